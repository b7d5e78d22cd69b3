"""Checks for the exercises of chapter 10, the Hugging Face pipeline.

check_chat_messages(chat_messages)        a chat as a list of {"role", "content"} messages
check_new_token_count(new_token_count)    max_length versus max_new_tokens
check_greedy_step(greedy_step)            one step of greedy decoding
check_top_k_search(top_k_search)          cosine-similarity search over a small corpus
check_rag_messages(rag_messages)          a retrieval prompt: numbered passages, a word budget
check_judge(judge)                        an accepted word or phrase occurs as whole words
"""

from __future__ import annotations

import torch

from llmcourse.exercises import expect, run_checks

__all__ = [
    "check_chat_messages",
    "check_new_token_count",
    "check_greedy_step",
    "check_top_k_search",
    "check_rag_messages",
    "check_judge",
]


def check_chat_messages(chat_messages) -> None:
    """``chat_messages(system, user)``: ``[{"role": "system", ...}, {"role": "user", ...}]``."""
    system, user = "You are a terse assistant.", "What is a token?"

    def structure(f):
        got = f(system, user)
        expect(isinstance(got, list), f"return a list of messages, got {type(got).__name__}")
        expect(len(got) == 2, f"two messages, the system prompt then the user's, got {len(got)}")
        expect(
            all(isinstance(m, dict) for m in got),
            "each message is a dict such as {'role': 'user', 'content': '...'}, not a "
            "tuple or a string",
        )
        expect(
            all(set(m) == {"role", "content"} for m in got),
            "each message has exactly the keys 'role' and 'content' (not 'text' or 'from')",
        )

    def roles(f):
        got = f(system, user)
        expect(
            [m["role"] for m in got] == ["system", "user"],
            "the roles are 'system' then 'user', in that order (the system prompt first)",
        )
        expect(
            [m["content"] for m in got] == [system, user],
            "put the texts in 'content' unchanged: the chat template adds the markers",
        )

    def other_text(f):
        got = f("Be kind.", "Hi")
        expect(
            [m["content"] for m in got] == ["Be kind.", "Hi"],
            "use the arguments, not fixed strings",
        )

    return run_checks("Exercise: chat messages", chat_messages, [structure, roles, other_text])


def check_new_token_count(new_token_count) -> None:
    """``new_token_count(prompt_len, max_length=None, max_new_tokens=None)`` without early stop."""

    def new_tokens(f):
        expect(
            f(9, max_new_tokens=20) == 20,
            "max_new_tokens counts only the generated tokens: a 9-token prompt with "
            "max_new_tokens=20 gets 20 new tokens",
        )

    def length(f):
        got = f(9, max_length=50)
        expect(got != 50, "max_length counts the prompt too: 50 is the total, not the new tokens")
        expect(
            got != 59,
            "max_length is the total length (prompt + new), not the new tokens added to the prompt",
        )
        expect(got == 41, f"a 9-token prompt with max_length=50 gets 41 new tokens, got {got!r}")

    def precedence(f):
        got = f(9, max_length=50, max_new_tokens=5)
        expect(
            got == 5,
            "when both are given, max_new_tokens takes precedence (as transformers "
            f"warns), so 5 new tokens; got {got!r}",
        )

    def no_room(f):
        for prompt_len, max_length in ((12, 10), (10, 10)):
            try:
                got = f(prompt_len, max_length=max_length)
            except ValueError:
                continue
            expect(
                not (isinstance(got, int) and got < 0),
                f"a {prompt_len}-token prompt with max_length={max_length} has no room: not "
                f"a negative count ({got!r}), but the ValueError that generate raises",
            )
            expect(
                False,
                f"a {prompt_len}-token prompt with max_length={max_length} leaves no "
                f"room for a new token, and generate raises a ValueError (as the chapter "
                f"showed with max_length=8); yours returned {got!r}",
            )
        try:
            one = f(9, max_length=10)
        except ValueError:
            one = "a ValueError"
        expect(
            one == 1,
            f"a 9-token prompt with max_length=10 has one position left: 1 new "
            f"token, got {one}; raise only when the prompt already fills max_length",
        )

    return run_checks(
        "Exercise: max_length versus max_new_tokens",
        new_token_count,
        [new_tokens, length, precedence, no_room],
    )


def check_greedy_step(greedy_step) -> None:
    """``greedy_step(input_ids, logits)``: append the argmax of the last position's logits."""
    ids = torch.tensor([[4, 1, 3], [2, 2, 0]])
    logits = torch.full((2, 3, 6), -1.0)
    logits[0, 0, 5] = logits[1, 0, 1] = 9.0  # the first position prefers other tokens
    logits[0, -1, 2] = logits[1, -1, 4] = 5.0
    logits[0, -1, 0] = logits[1, -1, 3] = -7.0  # the least likely tokens

    def shape(f):
        got = f(ids, logits)
        expect(isinstance(got, torch.Tensor), f"return a tensor, got {type(got).__name__}")
        expect(
            tuple(got.shape) == (2, 4),
            f"return the sequence with one token appended, shape (2, 4), got "
            f"{tuple(got.shape)}: torch.cat the new column onto input_ids",
        )

    def values(f):
        got = f(ids, logits)
        expect(torch.equal(got[:, :3], ids), "keep input_ids unchanged in front")
        expect(
            got[:, 3].tolist() != [5, 1],
            "you used the first position's logits: the next token comes from the LAST "
            "position, logits[:, -1, :]",
        )
        expect(got[:, 3].tolist() != [0, 3], "argmax, not argmin: take the most likely token")
        expect(
            got[:, 3].tolist() == [2, 4],
            f"the appended tokens should be [2, 4], got {got[:, 3].tolist()}",
        )

    def dtype(f):
        got = f(ids, logits)
        expect(got.dtype == ids.dtype, f"token ids stay integers ({ids.dtype}), got {got.dtype}")

    return run_checks("Exercise: one greedy step", greedy_step, [shape, values, dtype])


def check_top_k_search(top_k_search) -> None:
    """``top_k_search(query, corpus, k)``: indices of the k most cosine-similar rows, best first."""
    corpus = torch.tensor(
        [
            [10.0, 10.0, 0.0],  # long, 45 degrees away from the query
            [1.0, 0.1, 0.0],  # short, almost parallel
            [0.0, 0.0, 3.0],  # orthogonal
            [-2.0, 0.0, 0.0],  # opposite
            [2.0, 1.0, 0.0],
        ]
    )
    query = torch.tensor([1.0, 0.0, 0.0])

    def cosine(f):
        got = f(query, corpus, 2)
        expect(isinstance(got, list), f"return a list of ints, got {type(got).__name__}")
        expect(len(got) == 2, f"return exactly k indices (k=2), got {len(got)}")
        expect(
            list(got) != [0, 4],
            "that is the ranking by dot product: long vectors win. Divide by the norms "
            "(cosine similarity)",
        )
        expect(list(got) != [3, 2], "best first: sort by similarity in descending order")
        expect([int(i) for i in got] == [1, 4], f"the top 2 are [1, 4], got {got}")

    def k(f):
        got = f(query, corpus, 4)
        expect(len(got) == 4, f"return exactly k indices, got {len(got)}")
        expect([int(i) for i in got] == [1, 4, 0, 2], f"the top 4 are [1, 4, 0, 2], got {got}")

    return run_checks("Exercise: top-k semantic search", top_k_search, [cosine, k])


def check_rag_messages(rag_messages) -> None:
    """``rag_messages(question, passages, max_words)``: numbered passages within a word budget."""
    question = "Who wrote it?"

    def content(f, passages, max_words):
        got = f(question, passages, max_words)
        expect(isinstance(got, list), f"return a list of messages, got {type(got).__name__}")
        expect(
            len(got) == 1 and isinstance(got[0], dict),
            f"one message, a dict {{'role': 'user', 'content': ...}}, got {got!r:.80}",
        )
        expect(got[0].get("role") == "user", "the passages and the question go in a 'user' turn")
        text = got[0].get("content")
        expect(isinstance(text, str), f"the content is a string, got {type(text).__name__}")
        return text

    def layout(f):
        text = content(f, ["the first one", "and a second"], 50)
        expect("[0]" not in text, "number the passages from 1: [1], [2], ...")
        expect(
            not text.startswith("Question"),
            "the passages come first, then the question (the model reads them before it)",
        )
        expect(
            "[1] the first one" in text and "[2] and a second" in text,
            "write each passage as '[n] text', one per line, best first",
        )
        want = f"[1] the first one\n[2] and a second\n\nQuestion: {question}"
        expect(
            text == want,
            f"the content should be {want!r}: the passages, an empty line, then "
            f"'Question: ' and the question; got {text!r}",
        )

    def budget(f):
        text = content(f, ["one two three", "four five", "six"], 5)
        expect(
            text.startswith("[1] one two three"),
            "a budget of 5 words holds the first passage, 3 words: count words with "
            "len(p.split()), not characters",
        )
        expect(
            "[2] four five" in text,
            "a budget of 5 words holds 3 + 2 words: keep a passage while the total stays "
            "at most max_words (<=, not <)",
        )
        expect("[3]" not in text, "3 + 2 + 1 words is over a budget of 5: stop there")

    def stops(f):
        text = content(f, ["a b c d", "e f g h i j", "k"], 6)
        expect(
            "[2] k" not in text,
            "stop at the first passage that does not fit: do not skip it to take a later, "
            "shorter one (the passages are ranked, best first)",
        )
        expect(text == f"[1] a b c d\n\nQuestion: {question}", f"got {text!r}")

    def none_fit(f):
        text = content(f, ["far too many words here"], 2)
        expect(
            text == question,
            f"when no passage fits, the content is the question alone, got {text!r}",
        )
        text = content(f, [], 10)
        expect(
            text == question, f"with no passages the content is the question alone, got {text!r}"
        )

    def chars(f):
        text = content(f, ["abcdefghijklmnop"], 3)
        expect(
            text.startswith("[1] abcdefghijklmnop"),
            "a budget of 3 words holds a one-word passage of 16 characters: count words "
            "with len(p.split()), not characters",
        )

    return run_checks(
        "Exercise: a prompt that fits its budget",
        rag_messages,
        [layout, budget, stops, none_fit, chars],
    )


def check_judge(judge) -> None:
    """``judge(answer, accepted)``: an accepted word or phrase occurs as whole words."""

    def returns_bool(f):
        got = f("A horse!", ["horse"])
        expect(
            isinstance(got, bool),
            f"return True or False, got {type(got).__name__} (bool(...) of a match object)",
        )

    def whole_words(f):
        expect(
            f("He offers his kingdom for it.", ["king"]) is False,
            "'king' inside 'kingdom' is not the word king: match whole words (\\b at both "
            "ends), not substrings",
        )
        expect(
            f("Macbeth shall be king hereafter", ["king"]) is True,
            "the word 'king' occurs: True",
        )
        expect(
            f("A horse! a horse!", ["horse"]) is True,
            "punctuation next to a word ('horse!') still counts as the word: do not compare "
            "whole space-separated tokens",
        )

    def case(f):
        expect(
            f("Beware the Ides of March.", ["ides of march"]) is True,
            "ignore upper and lower case: 'Ides of March' matches 'ides of march'",
        )

    def phrase(f):
        expect(
            f("The ides fall in March, the month of Mars.", ["ides of march"]) is False,
            "a phrase must occur as it is written, its words together and in order, not "
            "each word somewhere in the answer",
        )
        expect(
            f("it is a pound of flesh", ["pound of flesh"]) is True,
            "the phrase 'pound of flesh' occurs: True",
        )

    def any_of(f):
        expect(f("a rose", ["lily", "rose"]) is True, "True when ANY accepted string occurs")
        expect(f("a rose", []) is False, "nothing accepted: False")
        expect(f("", ["rose"]) is False, "an empty answer contains nothing: False")

    return run_checks(
        "Exercise: a fairer judge",
        judge,
        [returns_bool, whole_words, case, phrase, any_of],
    )
