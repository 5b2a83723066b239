"""Self-service pages of ``tocsin api``: subscribe by email, text or webhook, confirm, manage."""

from dispatcher.web.self_service.routes import router

__all__ = ["router"]
