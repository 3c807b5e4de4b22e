"""One module per `murakkab` subcommand: `build_parser(prog)` and `run(args) -> int`."""
