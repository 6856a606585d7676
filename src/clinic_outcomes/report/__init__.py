"""The outcome report: HTML and PDF from the warehouse."""
