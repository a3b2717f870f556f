"""Fake upstream servers for tests: built from the official SDKs' types, independent of respgate."""

from .openai_upstream import FakeOpenAI, RecordedRequest
from .server import ServerThread

__all__ = ["FakeOpenAI", "RecordedRequest", "ServerThread"]
