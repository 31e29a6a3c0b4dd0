"""HTML report: parses, embeds the two PNG plots, lists steps (rolled back included)."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

from onnxprune.report import render_html, write_html


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.rows, self.text = [], [], [], []
        self.stack = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.stack.append(tag)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag in ("link", "script") and ("href" in attrs or "src" in attrs):
            self.links.append(attrs)
        if tag == "tr":
            self.rows.append(attrs.get("class"))

    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_self_contained_with_png_plots(report, tmp_path):
    path = write_html(report, tmp_path / "report.html")
    parser = Collector()
    parser.feed(path.read_text())
    parser.close()
    assert parser.stack == []  # every element closed
    assert len(parser.images) == 2
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert parser.links == []  # no external resource
    assert parser.rows.count("rolled_back") == 1
    text = " ".join(parser.text)
    assert "macs=0.5" in text and "rolled back" in text and "conv1" in text


def test_html_escapes_names(report):
    report.groups[0].name = "<script>x</script>"
    page = render_html(report)
    assert "<script>x" not in page and "&lt;script&gt;x" in page


def test_html_without_metric_or_latency(report):
    report.metric_before = report.metric_after = report.metric_drop = None
    report.latency_ms_before = report.latency_ms_after = None
    for step in report.steps:
        step.metric = step.drop = None
    report.accuracy_measured = False
    page = render_html(report)
    assert page.count("data:image/png;base64,") == 2
    assert "Accuracy was not measured" in page
