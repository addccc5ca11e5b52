def hello() -> str:
    return "from packages/greet"
