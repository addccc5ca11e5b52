def greeting() -> str:
    return "python-asgi-package"
