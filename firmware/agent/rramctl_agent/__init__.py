"""rramctl-agent: serves the overlay's transport operations over a serial port (docs/serial-protocol.md)."""

from rramctl_agent.agent import Agent, AgentConfig
from rramctl_agent.sessions import Session, SessionTable

__all__ = ["Agent", "AgentConfig", "Session", "SessionTable"]
