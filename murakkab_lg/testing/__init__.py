"""Test helpers that are real servers (not mocks), shipped so users can test their own graphs."""
