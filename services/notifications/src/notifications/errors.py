"""Notifications' errors.

chassis.errors.NotFoundError
└── NotificationNotFoundError   no notification with that id in the caller's mailbox

A consumed event that fails notifications' schema raises
`chassis.messaging.MalformedMessageError` (the bus dead-letters it); see entrypoints/events.py.
"""

from chassis.errors import NotFoundError

__all__ = ["NotificationNotFoundError"]


class NotificationNotFoundError(NotFoundError):
    """Also what another user's notification looks like: its existence is not revealed."""

    title = "Notification not found"
    slug = "notification-not-found"
