"""The members service's decisions: every check and refusal of a command, and the events it publishes.

Pure, in the shape of :mod:`services.runtime.handling`: ``handle_x(command, reads) -> Decision``, or ``Refused``.
"""

from __future__ import annotations
