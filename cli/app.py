import typer

app = typer.Typer()


@app.command()
def inspect() -> None:
    pass


def main() -> None:
    app()
