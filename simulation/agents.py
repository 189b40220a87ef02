"""Simulated participants (filled in by the scenario's ``agents``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


class AgentPool:
    def __init__(self, agents: list[Any]) -> None:
        self.agents = agents

    @classmethod
    def from_scenario(cls, scenario: Any) -> AgentPool:
        return cls([])

    def run(self, *, now: datetime) -> None:
        for agent in self.agents:
            agent.run(now=now)

    def wait(self) -> float:
        return 0.5
