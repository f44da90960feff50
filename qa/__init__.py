"""Technopolis QA: bilingual (EN + RU) extractive question answering with citations."""

__version__ = "0.1.0"
