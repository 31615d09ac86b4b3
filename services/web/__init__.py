"""The web page for village accountants, park operators and boards (a thin proxy plus static files)."""
