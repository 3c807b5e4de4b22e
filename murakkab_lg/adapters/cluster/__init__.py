"""adapters/cluster"""
