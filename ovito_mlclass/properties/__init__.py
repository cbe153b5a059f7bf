"""Property prediction from composition and structure."""
