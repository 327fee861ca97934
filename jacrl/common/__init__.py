"""What every part of jacrl shares: errors, serialization, small utilities."""
