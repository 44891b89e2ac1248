"""The README and docs/ hold together: every relative link and image path resolves (a `#anchor` names a heading of
the page it points to, slugged as GitHub does), the README's first code block is the two set-up commands and the
test command that .ci/run runs, and the README stays short, with its sections in the agreed order."""
import os
import re
import shlex
import urllib.parse

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
DOCS = os.path.join(ROOT, "docs")
PAGES = [README] + sorted(os.path.join(DOCS, f) for f in os.listdir(DOCS) if f.endswith(".md"))

# the README's top-level sections, in this order: what it is, set-up, using your data, results, reading and
# forking a script, where the rest is, what is not done yet
SECTIONS = ["What this is", "Set up, run the demo, run the tests", "Using your data", "Results",
            "Reading and forking a script", "Where the rest is", "Not done yet"]
MAX_README_LINES = 250

FENCE = re.compile(r"^ {0,3}(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target "title")
IMG_SRC = re.compile(r"<img\b[^>]*\bsrc\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")                       # [label]: target


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def rendered(text):
    """The text less its HTML comments (`<!-- TODO ... -->` notes are not shown, so their links are not links)."""
    return re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)


def prose_lines(text):
    """The page's lines outside fenced code blocks (code may show link-like text that is not a link)."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def without_code_spans(line):
    return re.sub(r"(`+)(.+?)\1", "", line)


def targets(text):
    """Every link, image and <img src> target of a page, outside code."""
    found = []
    for line in prose_lines(rendered(text)):
        line = without_code_spans(line)
        found += LINK.findall(line) + IMG_SRC.findall(line)
        found += REF_DEF.findall(line)
    return found


def slug(heading):
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation other than - and _ removed, spaces
    to -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)           # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    """The anchors of a page's headings, with GitHub's -1, -2 ... for repeated ones."""
    seen, out = {}, set()
    for line in prose_lines(rendered(read(path))):
        m = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            out.add(base if n == 0 else f"{base}-{n}")
            seen[base] = n + 1
    return out


def is_external(target):
    return urllib.parse.urlparse(target).scheme in ("http", "https", "mailto")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_relative_link_and_image_resolves(page):
    problems = []
    for target in targets(read(page)):
        if is_external(target):
            continue
        path, _, anchor = urllib.parse.unquote(target).partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        if not os.path.exists(resolved):
            problems.append(f"{target}: no file {os.path.relpath(resolved, ROOT)}")
        elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
            problems.append(f"{target}: no heading #{anchor} in {os.path.relpath(resolved, ROOT)}")
        elif not os.path.realpath(resolved).startswith(ROOT + os.sep) and os.path.realpath(resolved) != ROOT:
            problems.append(f"{target}: outside the repository (a clone would not have it)")
    assert not problems, f"{os.path.relpath(page, ROOT)}:\n" + "\n".join(problems)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {os.path.normpath(os.path.join(ROOT, urllib.parse.unquote(t).partition("#")[0]))
              for t in targets(read(README)) if not is_external(t)}
    missing = [os.path.relpath(p, ROOT) for p in PAGES[1:] if p not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


def code_blocks(text):
    blocks, current = [], None
    for line in text.splitlines():
        if FENCE.match(line):
            if current is None:
                current = []
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def commands(block):
    """A code block's commands: each line less its trailing `# comment` (outside quotes), blank lines dropped."""
    out = []
    for line in block:
        words = shlex.split(line, comments=True)
        if words:
            out.append(" ".join(words))
    return out


def ci_test_command():
    """The pytest line of .ci/run: the command the README must show."""
    lines = [line.strip() for line in read(os.path.join(ROOT, ".ci", "run")).splitlines()]
    found = [line for line in lines if re.match(r"^python3? -m pytest\b", line)]
    assert len(found) == 1, f".ci/run should run pytest once, found: {found}"
    return " ".join(shlex.split(found[0]))


def test_the_readme_starts_with_the_set_up_commands_and_the_test_command():
    blocks = code_blocks(read(README))
    assert blocks, "README.md has no code block"
    assert commands(blocks[0]) == ["pip install -r requirements.txt", "python ean.py", ci_test_command()], \
        "the README's first code block must be exactly: install, the demo, the test command of .ci/run"


def test_the_readme_is_short_and_its_sections_come_in_order():
    text = read(README)
    lines = text.splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines (at most {MAX_README_LINES})"
    sections = [line[3:].strip() for line in prose_lines(text) if line.startswith("## ")]
    assert sections == SECTIONS


def test_no_page_names_an_issue_number():
    """README.md and docs/ say what a thing is ("the exact-frame reader"), not which ticket asked for it."""
    hits = [line for page in PAGES for line in read(page).splitlines() if re.search(r"\bissues? \d+\b", line, re.I)]
    assert not hits, hits


def test_the_checker_sees_links_and_slugs_headings_as_github_does():
    text = ("See [a](docs/a.md#x), ![b](b.png), <img src='c.png'>\n[d]: d.md\n`[not](code.md)`\n"
            "```\n[not](fenced.md)\n```\n<!-- ![not](comment.png) -->\n")
    assert targets(text) == ["docs/a.md#x", "b.png", "c.png", "d.md"]
    assert slug("Checking a dataset before a run: `python -m common.check`") == \
        "checking-a-dataset-before-a-run-python--m-commoncheck"
    assert slug("ean.py") == "eanpy" and slug("Decoding and loading") == "decoding-and-loading"
    assert commands(["pip install -r requirements.txt   # it's the first", "", "python ean.py  # demo"]) == \
        ["pip install -r requirements.txt", "python ean.py"]
