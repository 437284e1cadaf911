"""--clear-target's guards: what may be cleared, and the confirmation."""

from __future__ import annotations

import pytest
from fsmigrate.clear_guards import check_clear_allowed, confirm_clear
from fsmigrate.errors import BadInput
from fsmigrate.groups import Feature, GroupSpec
from fsmigrate.settings import MigrationOptions, Settings


def spec(name: str, uri: str | None = "s3://bucket/fs/123/sagemaker/us-east-1/offline-store/"
         "g-1/data", table_format: str = "Glue") -> GroupSpec:
    return GroupSpec(name=name, record_id="id", event_time="ts",
                     features=(Feature("id", "String"), Feature("ts", "String")),
                     online=True, offline=uri is not None, offline_uri=uri,
                     table_format=table_format if uri else None)


def settings_for(target: str, yes: bool = False, confirm: str | None = None) -> Settings:
    return Settings(source="some-source", target=target, yes=yes,
                    migration=MigrationOptions(clear_target=True, confirm_clear=confirm))


class Asker:
    def __init__(self, answer: str | BaseException) -> None:
        self.answer = answer
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def test_confirm_clear_passes_with_yes_or_the_confirm_setting_without_asking():
    ask = Asker("wrong")
    confirm_clear(settings_for("tgt", yes=True), "tgt", stdin_isatty=False, ask=ask)
    confirm_clear(settings_for("tgt", confirm="tgt"), "tgt", stdin_isatty=True, ask=ask)
    assert ask.prompts == []


def test_confirm_clear_asks_a_terminal_for_the_exact_name():
    ask = Asker("tgt\n")
    confirm_clear(settings_for("tgt"), "tgt", stdin_isatty=True, ask=ask)
    assert ask.prompts == ["Type the target group name (tgt) to delete all its records: "]


@pytest.mark.parametrize("answer", ["TGT", "tg", "yes", "", EOFError()])
def test_confirm_clear_refuses_a_wrong_terminal_answer(answer):
    ask = Asker(answer)
    with pytest.raises(BadInput) as info:
        confirm_clear(settings_for("tgt"), "tgt", stdin_isatty=True, ask=ask)
    assert len(ask.prompts) == 1
    assert str(info.value) == ("--clear-target deletes every record of tgt: confirm with --yes, "
                               "migration.confirm_clear: tgt, or answer the prompt")


def test_confirm_clear_refuses_without_a_terminal_and_never_asks():
    ask = Asker("tgt")
    with pytest.raises(BadInput, match="confirm with --yes"):
        # confirm_clear names another group: it confirms nothing for this one
        confirm_clear(settings_for("tgt", confirm="other"), "tgt", stdin_isatty=False, ask=ask)
    assert ask.prompts == []


def test_check_clear_allowed_refuses_the_source_itself():
    with pytest.raises(BadInput, match="would delete the source g"):
        check_clear_allowed(spec("g"), spec("g", uri="s3://other/data"))


@pytest.mark.parametrize("src_uri, tgt_uri", [
    ("s3://bucket/fs/a/data", "s3://bucket/fs/"),  # target holds the source
    ("s3://bucket/fs", "s3://bucket/fs/a/data/"),  # source holds the target
    ("s3://bucket/fs/a/data", "s3a://bucket/fs/a/data"),  # same place, other scheme
    ("s3://bucket/x", "s3://bucket"),  # whole bucket
])
def test_check_clear_allowed_refuses_overlapping_offline_prefixes(src_uri, tgt_uri):
    with pytest.raises(BadInput, match="overlaps") as info:
        check_clear_allowed(spec("src", uri=src_uri), spec("tgt", uri=tgt_uri))
    assert "\n" not in str(info.value)


def test_check_clear_allowed_passes_siblings_and_groups_without_offline_store():
    # a common string prefix is not a common folder
    check_clear_allowed(spec("src", uri="s3://bucket/fs/g-1/data"),
                        spec("tgt", uri="s3://bucket/fs/g-10/data"))
    check_clear_allowed(spec("src", uri=None), spec("tgt", uri="s3://bucket/fs"))
    with pytest.raises(BadInput):  # and the same pair overlapping is refused: the check is live
        check_clear_allowed(spec("src", uri="s3://bucket/fs/g-1/data"),
                            spec("tgt", uri="s3://bucket/fs/g-1/data/"))


def test_check_clear_allowed_refuses_an_iceberg_target():
    with pytest.raises(BadInput, match="Iceberg"):
        check_clear_allowed(spec("src", uri="s3://a/src"),
                            spec("tgt", uri="s3://b/tgt", table_format="Iceberg"))
    check_clear_allowed(spec("src", uri="s3://a/src", table_format="Iceberg"),
                        spec("tgt", uri="s3://b/tgt"))  # an Iceberg source is not our concern
