"""What is said, when and by whom: publishing, approval, the incident lifecycle, follow-ups and
promises, maintenance, guardrails, preview and the periodic tick."""
