"""Below the runtime: what it drives (engine processes and servers, GPU/CPU telemetry)."""
