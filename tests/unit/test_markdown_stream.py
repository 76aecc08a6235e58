"""The streaming Markdown splitter: closed blocks, the open tail, fences and think tags."""

from __future__ import annotations

import random

from ui.markdown_stream import Block, MarkdownStream, split_blocks


def _feed(text: str) -> MarkdownStream:
    stream = MarkdownStream()
    stream.feed(text)
    return stream


def test_paragraphs_close_at_a_blank_line_and_the_last_stays_open() -> None:
    stream = _feed("# Title\nfirst para\n\n- a\n- b\n\nopen par")
    assert stream.take_closed() == [
        Block("prose", "# Title\nfirst para"),
        Block("prose", "- a\n- b"),
    ]
    assert stream.tail.kind == "prose"
    assert stream.tail.prose == "open par"
    assert stream.take_closed() == []


def test_a_table_is_one_prose_block() -> None:
    blocks = split_blocks("| a | b |\n|---|---|\n| 1 | 2 |\n\nafter")
    assert blocks == [Block("prose", "| a | b |\n|---|---|\n| 1 | 2 |"), Block("prose", "after")]


def test_backtick_and_tilde_fences_close_with_their_own_marker() -> None:
    text = "```python\nx = 1\n\n~~~\ny = 2\n```\n~~~~ js\nlet z\n```\n~~~~\nend"
    assert split_blocks(text) == [
        Block("code", "x = 1\n\n~~~\ny = 2", "python"),
        Block("code", "let z\n```", "js"),
        Block("prose", "end"),
    ]


def test_an_open_fence_is_the_tail_with_its_completed_lines() -> None:
    stream = _feed("intro\n\n```py\nline one\nline two\nline th")
    assert stream.take_closed() == [Block("prose", "intro")]
    tail = stream.tail
    assert (tail.kind, list(tail.code_lines), tail.partial, tail.language) == (
        "code",
        ["line one", "line two"],
        "line th",
        "py",
    )
    # Unclosed at the end of the message: still a code block, nothing lost.
    assert stream.finish() == [Block("code", "line one\nline two\nline th", "py")]


def test_blank_lines_inside_a_fence_do_not_close_it() -> None:
    stream = _feed("```\na\n\n\nb\n")
    assert stream.take_closed() == []
    assert list(stream.tail.code_lines) == ["a", "", "", "b"]


def test_think_section_open_then_closed() -> None:
    stream = _feed("<think>\nI should count the words here")
    assert stream.take_closed() == []
    assert (stream.tail.kind, stream.tail.think_words) == ("think", 6)
    stream.feed(" now\n</think>\n\nThe answer.")
    assert stream.take_closed() == [Block("think", "I should count the words here now")]
    assert stream.tail.prose == "The answer."


def test_think_tag_on_the_partial_first_line_shows_as_reasoning() -> None:
    tail = _feed("<think>Hmm, let").tail
    assert (tail.kind, tail.prose, tail.think_words) == ("prose", "", 2)


def test_a_stray_closing_think_tag_turns_everything_before_into_reasoning() -> None:
    stream = _feed("I think\n\nit is 4.\n")
    assert stream.take_closed() == [Block("prose", "I think")]
    stream.feed("</think>\n\nFour.\n\n")
    assert stream.take_reset() is True
    assert stream.take_reset() is False
    assert stream.take_closed() == [Block("think", "I think\n\nit is 4."), Block("prose", "Four.")]


def test_think_tags_inside_code_are_code() -> None:
    assert split_blocks("```\n</think>\n<think>\n```") == [Block("code", "</think>\n<think>")]


def test_random_chunking_gives_the_same_blocks_as_whole_text() -> None:
    text = (
        "<think>\nplan it\n</think>\n# H\n\npara *x*\n\n- a\n- b\n\n```python\n"
        "def f():\n    return 1\n```\n\n| a |\n|---|\n| 1 |\ntail text"
    )
    rng = random.Random(7)
    for _ in range(30):
        stream, i = MarkdownStream(), 0
        while i < len(text):
            n = rng.randint(1, 9)
            stream.feed(text[i : i + n])
            i += n
        stream.finish()
        assert stream.closed == split_blocks(text)
    assert [b.kind for b in split_blocks(text)] == [
        "think",
        "prose",
        "prose",
        "prose",
        "code",
        "prose",
    ]
