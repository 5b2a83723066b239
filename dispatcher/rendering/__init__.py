"""Templates to text: the sandboxed Jinja2 renderer, the context templates see, locales and filters."""
