"""Strict check of one HTML file (issue #15, the public register).

Python's html.parser tokenises without forgiving anything here: every
element is one of a known set, every non-void element is closed in order,
void elements are never closed, attributes are never repeated, every `&`
is a reference, and the page is accessible as a table page must be:
`<!DOCTYPE html>`, `<html lang>`, a `<title>`, `<meta charset="utf-8">`,
each `<table>` opening with a `<caption>`, every `<th>` with
`scope="col"` or `scope="row"`, and no script (no `<script>`, no `on*`
attribute, no `javascript:` URL). Prints each problem with its line and
exits 1 if there is any.
"""
import sys
from html.parser import HTMLParser

VOID = {"meta", "link", "br", "hr", "img", "input", "col", "wbr"}
KNOWN = VOID | {"html", "head", "title", "style", "body", "main", "h1", "h2", "p", "abbr",
                "table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td", "colgroup",
                "span", "a", "strong", "em", "code", "header", "footer", "section", "div"}
PARENTS = {"tr": {"thead", "tbody", "tfoot"}, "th": {"tr"}, "td": {"tr"},
           "thead": {"table"}, "tbody": {"table"}, "caption": {"table"},
           "title": {"head"}, "meta": {"head"}, "style": {"head"},
           "head": {"html"}, "body": {"html"}}


class Strict(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=False)
        self.problems, self.stack, self.seen = [], [], []
        self.doctype = False
        self.first = True
        self.table_children = []
        self.title_text = ""

    def bad(self, what):
        self.problems.append(f"line {self.getpos()[0]}: {what}")

    def handle_decl(self, decl):
        if not self.first or decl.lower() != "doctype html":
            self.bad(f"doctype must come first and be <!DOCTYPE html>: {decl!r}")
        self.doctype = True
        self.first = False

    def handle_starttag(self, tag, attrs):
        if self.first:
            self.bad("no <!DOCTYPE html> before the first element")
        self.first = False
        self.seen.append(tag)
        names = [a for a, _ in attrs]
        if len(names) != len(set(names)):
            self.bad(f"<{tag}> repeats an attribute")
        if tag not in KNOWN:
            self.bad(f"unknown or unexpected element <{tag}>")
        if tag == "script" or any(a.startswith("on") for a in names) or any(
                (v or "").strip().lower().startswith("javascript:") for _, v in attrs):
            self.bad(f"<{tag}> carries script")
        parent = self.stack[-1] if self.stack else None
        if tag in PARENTS and parent not in PARENTS[tag]:
            self.bad(f"<{tag}> inside <{parent}>")
        if parent == "table":
            self.table_children.append(tag)
        a = dict(attrs)
        if tag == "html" and not a.get("lang"):
            self.bad("<html> without lang")
        if tag == "th" and a.get("scope") not in ("col", "row"):
            self.bad("<th> without scope=col|row")
        if tag == "meta" and "charset" in a and a["charset"].lower() != "utf-8":
            self.bad("charset is not utf-8")
        if tag == "table":
            self.table_children = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.bad(f"self-closing <{tag}/>")
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag in VOID:
            self.bad(f"end tag for void element </{tag}>")
            return
        if not self.stack or self.stack[-1] != tag:
            self.bad(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag == "table" and (not self.table_children or self.table_children[0] != "caption"):
            self.bad("a <table> that does not open with a <caption>")

    def handle_data(self, data):
        if "&" in data:
            self.bad("a bare & (not a character reference)")
        if self.stack and self.stack[-1] == "title":
            self.title_text += data
        if data.strip() and not self.stack:
            self.bad("text outside <html>")

    def handle_entityref(self, name):
        if name not in ("amp", "lt", "gt", "quot", "apos", "nbsp"):
            self.bad(f"unknown entity &{name};")

    def handle_comment(self, data):
        pass


text = open(sys.argv[1], encoding="utf-8").read()
p = Strict()
p.feed(text)
p.close()
if not p.doctype:
    p.bad("no doctype")
if p.stack:
    p.bad(f"unclosed elements at the end: {p.stack}")
for need in ("html", "head", "title", "body", "meta", "table", "caption", "thead", "tbody"):
    if need not in p.seen:
        p.bad(f"no <{need}>")
if not p.title_text.strip():
    p.bad("an empty <title>")
for problem in p.problems:
    print(problem)
sys.exit(1 if p.problems else 0)
