class Panel:
    pass
