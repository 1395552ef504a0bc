"""One module per area; each exposes register(subparsers) and keeps heavy imports inside handlers."""
