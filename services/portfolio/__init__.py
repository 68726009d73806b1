"""PortfolioService: paper accounts, order/fill log, risk limits, marks and Greeks (issue 16)."""
