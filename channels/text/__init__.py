"""Length budgets of short-text channels: SMS segments (GSM-7/UCS-2) and X weighted length."""
