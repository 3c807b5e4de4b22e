"""adapters/telemetry"""
