"""S3's XML: documents built as small trees and rendered, and request bodies
parsed safely (no DTD, no entities: a body that declares one is malformed).

Elements keep their local names only (S3's namespace, or any other, is
dropped on parsing), which is what the S3 request schemas need.
"""

from __future__ import annotations

from collections.abc import Iterator
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


class Element:
    __slots__ = ("tag", "text", "children", "attrs")

    def __init__(self, tag: str, text: str | None = None,
                 attrs: dict[str, str] | None = None) -> None:
        self.tag = tag
        self.text = text
        self.children: list[Element] = []
        self.attrs = attrs

    def add(self, tag: str, text: str | None = None,
            attrs: dict[str, str] | None = None) -> Element:
        child = Element(tag, text, attrs)
        self.children.append(child)
        return child

    def find(self, tag: str) -> Element | None:
        for child in self.children:
            if child.tag == tag:
                return child
        return None

    def findtext(self, tag: str) -> str | None:
        child = self.find(tag)
        return child.text if child is not None else None

    def iter(self, tag: str) -> Iterator[Element]:
        return (c for c in self.children if c.tag == tag)

    def _write(self, out: list[str]) -> None:
        start = self.tag
        if self.attrs:
            start += "".join(f" {k}={quoteattr(v)}" for k, v in self.attrs.items())
        if not self.children and not self.text:
            out.append(f"<{start}/>" if self.text is None else f"<{start}></{self.tag}>")
            return
        out.append(f"<{start}>")
        if self.text:
            out.append(escape(self.text))
        for child in self.children:
            child._write(out)
        out.append(f"</{self.tag}>")


def render(root: Element, namespace: bool = True) -> bytes:
    """The document, with the XML declaration; the S3 namespace on the root."""
    out: list[str] = []
    root._write(out)
    if namespace:
        first = out[0]
        out[0] = first[:-2] + f' xmlns="{S3_NAMESPACE}"/>' if first.endswith("/>") else \
            first[:-1] + f' xmlns="{S3_NAMESPACE}">'
    return DECLARATION + "".join(out).encode("utf-8")


class XMLError(ValueError):
    """Not well-formed, or declares a DTD or entities."""


def parse(data: bytes) -> Element:
    """The document's root element; ``XMLError`` for anything but plain XML."""
    parser = expat.ParserCreate(namespace_separator=" ")
    stack: list[Element] = []
    result: list[Element] = []

    def start(name: str, _attrs: dict[str, str]) -> None:
        elem = Element(name.rsplit(" ", 1)[-1])
        if stack:
            stack[-1].children.append(elem)
        else:
            result.append(elem)
        stack.append(elem)

    def end(_name: str) -> None:
        elem = stack.pop()
        if elem.text is not None and elem.children:
            elem.text = elem.text if elem.text.strip() else None

    def chars(data: str) -> None:
        if stack:
            elem = stack[-1]
            elem.text = data if elem.text is None else elem.text + data

    def forbidden(*_args: object) -> None:
        raise XMLError("DTDs and entities are not allowed")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = forbidden
    parser.EntityDeclHandler = forbidden
    parser.ExternalEntityRefHandler = forbidden  # type: ignore[assignment]
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise XMLError(str(exc)) from None
    if not result:
        raise XMLError("no root element")
    return result[0]
