"""Who may act: API tokens (hashed, scoped), the identities behind the CLI, API and console."""
