"""Presentation: text, Markdown and HTML for profile, advice, verify and gate; inline SVG charts."""
