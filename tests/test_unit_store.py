"""
Unit tests for the state database and the responses kept in it.
"""

from __future__ import annotations

import os
import tempfile

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.conversation import Conversation, Message, text_block
from claudeproxy.protocols.responses.store import ResponseStore, Stored
from claudeproxy.store.db import FILENAME, open_state
from claudeproxy.store.responses import PersistedResponses, conversation_from_json, conversation_json
from claudeproxy.store.schema import MIGRATIONS

IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}


def conv(*texts: str) -> Conversation:
    return Conversation(
        "sys", [Message("user" if i % 2 == 0 else "assistant", [text_block(t)]) for i, t in enumerate(texts)]
    )


class StoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="cp-state-")
        self.clock = Clock()
        db = open_state(self.clock, self.dir, MIGRATIONS)
        assert db is not None
        self.db = db
        self.addCleanup(db.stop)

    def test_file_in_state_dir_private(self) -> None:
        self.assertTrue(os.path.exists(os.path.join(self.dir, FILENAME)))
        self.assertEqual(os.stat(self.dir).st_mode & 0o077, 0)

    def test_no_state_dir_no_database(self) -> None:
        self.assertIsNone(open_state(self.clock, "", MIGRATIONS))

    def test_conversation_round_trip(self) -> None:
        c = Conversation(
            None, [Message("user", [text_block("a\ud800"), IMAGE]), Message("assistant", [text_block("b")])]
        )
        self.assertEqual(conversation_from_json(conversation_json(c)), c)

    def test_survives_a_new_store(self) -> None:
        store = ResponseStore(2, PersistedResponses(self.db, self.clock.seconds))
        store.put("resp_1", Stored(conv("q", "a"), {"id": "resp_1"}))
        # a new daemon: an empty memory, the same file
        db2 = open_state(self.clock, self.dir, MIGRATIONS)
        assert db2 is not None
        self.addCleanup(db2.stop)
        again = ResponseStore(2, PersistedResponses(db2, self.clock.seconds))
        stored = again.get("resp_1")
        assert stored is not None
        self.assertEqual(stored.conversation, conv("q", "a"))
        self.assertEqual(stored.response, {"id": "resp_1"})
        self.assertTrue(again.delete("resp_1"))
        self.assertIsNone(ResponseStore(2, PersistedResponses(db2, self.clock.seconds)).get("resp_1"))

    def test_pruned_by_count_and_age(self) -> None:
        persisted = PersistedResponses(self.db, self.clock.seconds, keep=3, max_age=100.0)
        for i in range(5):
            self.clock.advance(1)
            persisted.save("r%d" % i, conv("q"), None)
        persisted.prune_now()
        self.assertEqual([persisted.load("r%d" % i) is not None for i in range(5)], [False, False, True, True, True])
        self.clock.advance(200)
        persisted.prune_now()
        self.assertIsNone(persisted.load("r4"))

    def test_memory_bounded_file_not(self) -> None:
        store = ResponseStore(1, PersistedResponses(self.db, self.clock.seconds))
        store.put("a", Stored(conv("1"), None))
        store.put("b", Stored(conv("2"), None))
        self.assertEqual(len(store), 1)
        stored = store.get("a")
        assert stored is not None
        self.assertEqual(stored.conversation, conv("1"))
