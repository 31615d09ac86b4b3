"""The members service's pure rules (DESIGN §11) beyond the split itself (:mod:`services.members.split`)."""

from __future__ import annotations
