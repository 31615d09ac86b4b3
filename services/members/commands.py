"""The commands of the members service: what a request asks for, parsed (wire strings kept), with the ids it
creates already chosen by the API and the caller's name where an event records it."""

from __future__ import annotations
