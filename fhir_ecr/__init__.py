"""mECR, the mobile Electronic Coaching Record service."""

__version__ = "0.1.0"
