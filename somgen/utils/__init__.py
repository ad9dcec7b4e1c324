"""Internal utilities of somgen."""
