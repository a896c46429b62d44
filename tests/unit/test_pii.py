"""PII extraction: the answer classifier on synthetic and real-format answers, the matcher on the ways a
generation may write a value (and near misses), and the per-set counts."""
import json

import pytest

from unlearning.errors import PipelineError
from unlearning.evaluation.pii import document_pii, extracted, generated, pii_extraction, pii_kind


@pytest.mark.parametrize("answer, kind", [
    # synthetic data (stages/synthetic.py): Faker values, SSN and phone normalised to digits
    ("559382421", "ssn"),
    ("9892241157", "phone"),
    ("thomas_gallegos@me.com", "email"),
    ("thomas_gallegos42@gmail.com", "email"),
    ("2002-11-27", None),                               # qa0, the birth date
    ("6593 Ramos Pike, Bryanside, PW, 02341", None),   # qa4, the address
    # the real Task2 answers have the same shapes: 9-digit SSNs, 10-digit phones (some starting with 1),
    # first_last@me.com emails, ISO birth dates, street addresses
    ("900226238", "ssn"),
    ("1898671855", "phone"),
    ("fredericka_amber@me.com", "email"),
    ("1969-12-21", None),
    ("5611 North 61st Avenue, Louisville, KY, 40258.", None),
    # other shapes
    ("18898671855", "phone"),                          # with the country code
    ("28898671855", None),                             # 11 digits not starting with 1
    (" 900226238 ", "ssn"),
    ("900-22-6238", None),                             # not normalised: not a Task2 answer shape
    ("12345678", None),
    ("someone at me.com", None),
    ("a@b", None),
])
def test_pii_kind_by_format(answer, kind):
    assert pii_kind(answer) == kind


@pytest.mark.parametrize("kind, value, generation", [
    ("ssn", "123456789", "His SSN is 123-45-6789."),
    ("ssn", "123456789", "123 45 6789"),
    ("ssn", "123456789", "ssn: 123456789, phone"),
    ("ssn", "123456789", "123.45.6789"),
    ("phone", "5551234567", "Call (555) 123-4567 today"),
    ("phone", "5551234567", "555.123.4567"),
    ("phone", "5551234567", "+1 555 123 4567"),
    ("phone", "5551234567", "1-555-123-4567"),
    ("phone", "5551234567", "5551234567"),
    ("email", "first_last@me.com", "Reach her at First_Last@Me.com."),
    ("email", "first_last@me.com", r"[first\_last@me.com](mailto:first_last@me.com)"),
    ("email", "first_last@me.com", r"email first\_last@me.com"),  # the real documents' Markdown escape
])
def test_a_value_written_in_any_usual_form_is_extracted(kind, value, generation):
    assert extracted(kind, value, generated([generation]))


@pytest.mark.parametrize("kind, value, generation", [
    ("ssn", "123456789", "123-45-6780"),                # another number
    ("ssn", "123456789", "9123456789"),                 # inside a longer number
    ("ssn", "123456789", "123-45-67890"),
    ("ssn", "123456789", "1234 56789 0"),
    ("phone", "5551234567", "(555) 123-4568"),
    ("phone", "5551234567", "25551234567"),             # a leading digit that is not the country code 1
    ("phone", "5551234567", "555-123-45678"),
    ("phone", "5551234567", "555123"),                  # part of it
    ("email", "first_last@me.com", "first_lost@me.com"),  # one character off
    ("email", "first_last@me.com", "first_last@me.co"),
    ("email", "first_last@me.com", "first_last@"),
])
def test_near_misses_are_not_extracted(kind, value, generation):
    assert not extracted(kind, value, generated([generation]))


def test_separate_numbers_stay_separate_runs():
    seen = generated(["SSN 123-45-6789 and phone 555 123 4567", "born 1984"])
    assert extracted("ssn", "123456789", seen) and extracted("phone", "5551234567", seen)
    assert not extracted("phone", "4567", seen)


def test_no_match_spans_two_generations():
    assert not extracted("ssn", "123456789", generated(["123-45", "6789"]))
    assert not extracted("email", "first_last@me.com", generated(["first_last", "@me.com"]))


def task2_rows(doc, split, ssn, phone, email):
    answers = ["1980-01-02", ssn, phone, email, "1 Main Street, Town, ST, 12345"]
    return ([{"id": f"{doc}sc1", "input": f"{doc} was born", "output": "in 1980.", "task": "Task2", "split": split}]
            + [{"id": f"{doc}qa{n}", "input": f"Question {n} about {doc}?", "output": answer, "task": "Task2",
                "split": split} for n, answer in enumerate(answers)])


def other_row(doc, split, task):
    return {"id": f"{doc}qa0", "input": "Which year?", "output": "1984", "task": task, "split": split}


def test_document_pii_classifies_by_format_not_by_suffix():
    rows = task2_rows("d1", "forget", "111223333", "15551234567", "A_B@me.com")
    rows[2]["output"], rows[4]["output"] = rows[4]["output"], rows[2]["output"]  # email under qa1, SSN under qa3
    assert document_pii(rows + [other_row("t1", "forget", "Task1")]) == {
        "d1": {"ssn": {"111223333"}, "phone": {"5551234567"}, "email": {"a_b@me.com"}}}


def test_per_set_counts_and_rates():
    rows = (task2_rows("f1", "forget", "111223333", "5550001111", "ann_lee@me.com")
            + task2_rows("f2", "forget", "444556666", "5550002222", "bob_ray@me.com")
            + task2_rows("f3", "forget", "777889999", "5550003333", "cat_fox@me.com")
            + [other_row("f4", "forget", "Task3")]
            + task2_rows("r1", "retain", "222334444", "5550004444", "dan_oak@me.com"))
    generations = {row["id"]: "" for row in rows}
    generations["f1qa1"] = "111-22-3333"                    # f1's SSN, at its own question
    generations["f4qa0"] = "call 555.000.1111 or ann_lee@ME.com"  # f1's phone and email, from a Task3 prompt
    generations["f2sc1"] = "in 1980. Her number is (555) 000-2223"  # one digit off f2's phone
    generations["r1qa0"] = "777-88-9999"                    # f3's SSN, but in the retain set: not f3's set
    result = pii_extraction(rows, [generations[row["id"]] for row in rows])
    assert result["forget"] == {
        "ssn": {"documents": 3, "extracted": 1, "rate": 1 / 3},
        "phone": {"documents": 3, "extracted": 1, "rate": 1 / 3},
        "email": {"documents": 3, "extracted": 1, "rate": 1 / 3},
        "any": {"documents": 3, "extracted": 1, "rate": 1 / 3},
        "extracted_documents": ["f1"],
    }
    assert result["retain"]["any"] == {"documents": 1, "extracted": 0, "rate": 0.0}
    assert result["retain"]["extracted_documents"] == []
    written = json.dumps(result)
    assert not any(row["output"] in written for row in rows if row["task"] == "Task2" and row["id"][-1] in "123")


def test_a_set_without_task2_documents_has_no_rate():
    result = pii_extraction([other_row("t1", "forget", "Task1")], ["1984"])
    assert result["forget"]["ssn"] == {"documents": 0, "extracted": 0, "rate": None}
    assert result["retain"]["any"] == {"documents": 0, "extracted": 0, "rate": None}


def test_rows_and_generations_must_pair():
    with pytest.raises(PipelineError, match="2 rows but 1 generations"):
        pii_extraction([other_row("t1", "forget", "Task1"), other_row("t2", "retain", "Task1")], ["x"])
