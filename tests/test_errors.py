"""Bad input gets a clear ValueError or TypeError naming the argument; never a crash or a
silently wrong number."""

import re

import numpy as np
import pytest

import fastce

P = np.array([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
Y = np.array([1, 0, 0])
CE = fastce.cross_entropy


def raises(exc, pattern, fn, *args, **kwargs):
    with pytest.raises(exc, match=pattern):
        fn(*args, **kwargs)


def test_label_out_of_range_names_the_position():
    raises(
        ValueError,
        re.escape(
            "target holds label 7 at position 2; expected an integer class index 0 <= label < 2"
        ),
        CE,
        [0, 1, 7],
        P,
    )
    raises(
        ValueError,
        r"label -1 at position \(1, 0\)",
        CE,
        [[0, 1], [-1, 0]],
        np.full((2, 2, 2), 0.5),
    )
    raises(ValueError, "at position 0", CE, [2**40, 0, 0], P, from_logits=True)


def test_out_of_range_label_in_a_large_input_is_found():
    x = np.zeros((100_000, 3), np.float32)
    y = np.zeros(100_000, np.int64)
    y[77_777] = 3
    raises(ValueError, "label 3 at position 77777", CE, y, x, from_logits=True, reduction="mean")


def test_non_integral_float_labels():
    np.testing.assert_array_equal(CE([1.0, 0.0, 0.0], P), CE(Y, P))
    raises(ValueError, r"non-integral label 1.5 at position 1", CE, [0.0, 1.5, 0.0], P)
    raises(ValueError, r"non-integral label nan at position 0", CE, [np.nan, 1.0, 0.0], P)
    raises(ValueError, "label inf at position 2", CE, [0.0, 1.0, np.inf], P)


def test_pytorch_padding_label_says_to_pass_ignore_index():
    """-100 is PyTorch's padding label; without ignore_index the error says so, in every
    function that takes class indices, and in the command's terms for ``fastce score``."""
    hint = r"-100 is the label PyTorch pads with .*pass ignore_index=-100 to leave"
    x = np.zeros((4, 3), np.float32)
    y = np.array([0, 2, -100, 1])
    raises(ValueError, r"label -100 at position 2; .*" + hint, CE, y, x, from_logits=True)
    raises(ValueError, hint, fastce.perplexity, y, x, from_logits=True)
    raises(ValueError, hint, CE, y, x, from_logits=True, ignore_index=-1)
    with pytest.raises(ValueError) as other:
        CE([0, 2, -5, 1], x, from_logits=True)
    assert "PyTorch" not in str(other.value)
    np.testing.assert_array_equal(
        CE(y, x, from_logits=True, ignore_index=-100), CE(np.where(y < 0, -1, y), x,
                                                          from_logits=True, ignore_index=-1)
    )  # fmt: skip


def test_target_logits_outside_the_simplex_say_to_pass_target_from_logits():
    """A target that holds logits (a teacher model's outputs) is refused with the flag that
    reads it as logits, in every function with a target distribution; with the flag, it is
    used."""
    teacher = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    student = np.array([[1.0, 0.0, 0.5], [0.5, 2.0, -1.0]])
    hint = r"p must hold probabilities in \[0, 1\]; got 2.0 at position \(0, 0\) " + (
        r"\(pass target_from_logits=True if it holds logits\)"
    )
    for f in (fastce.kl_divergence, fastce.js_divergence):
        raises(ValueError, hint, f, teacher, student, from_logits=True)
        assert np.all(np.isfinite(f(teacher, student, from_logits=True, target_from_logits=True)))
    raises(
        ValueError,
        r"target must hold probabilities.*\(pass target_from_logits=True",
        CE,
        teacher,
        student,
        from_logits=True,
    )
    raises(
        ValueError,
        r"target_from_logits applies to soft targets only; .* holds class indices",
        CE,
        [0, 1],
        student,
        from_logits=True,
        target_from_logits=True,
    )
    raises(TypeError, "target_from_logits must be", fastce.kl_divergence, P, P,
           target_from_logits="yes")  # fmt: skip


def test_ignore_index_is_not_out_of_range():
    out = CE([1, -100, 0], P, ignore_index=-100)
    assert out[1] == 0.0
    raises(ValueError, "or ignore_index=-100", CE, [1, -5, 0], P, ignore_index=-100)


def test_shape_mismatch_names_both_shapes():
    raises(ValueError, re.escape("target has shape (2,) but pred has shape (3, 2)"), CE, [0, 1], P)
    raises(
        ValueError,
        re.escape("p has shape (3, 2) but q has shape (2, 2)"),
        fastce.kl_divergence,
        P,
        P[:2],
    )
    raises(ValueError, "target has shape", fastce.binary_cross_entropy, [1, 0], [0.5])


def test_probabilities_out_of_range():
    raises(
        ValueError,
        r"pred must hold probabilities in \[0, 1\]; got -0.5 at position "
        r"\(1, 0\) \(pass from_logits=True",
        CE,
        Y,
        [[0.2, 0.8], [-0.5, 1.5], [1, 0]],
    )
    raises(ValueError, r"p must hold probabilities.*1.5", fastce.entropy, [0.5, 1.5])
    raises(
        ValueError,
        r"target must hold probabilities.*2.0",
        fastce.binary_cross_entropy,
        [2.0],
        [0.5],
    )
    raises(
        ValueError,
        r"q must hold probabilities.*inf",
        fastce.kl_divergence,
        [0.5, 0.5],
        [np.inf, 0.5],
    )
    raises(ValueError, r"target must hold probabilities", CE, [[0.5, 1.5]], [[0.5, 0.5]])
    # Logits are not probabilities: no range check there.
    assert np.isfinite(CE(Y, P * 10 - 3, from_logits=True)).all()


@pytest.mark.parametrize("base", [0, -2, 1, 1.0, np.inf, np.nan, "2", True])
def test_invalid_base(base):
    raises(
        ValueError,
        "base must be None or a positive number other than 1",
        fastce.entropy,
        P,
        base=base,
    )


@pytest.mark.parametrize("reduction", ["avg", "Mean", None, "elementwise_mean"])
def test_unknown_reduction(reduction):
    raises(
        ValueError, "reduction must be one of 'none', 'sum', 'mean'", CE, Y, P, reduction=reduction
    )


@pytest.mark.parametrize("eps", [-1e-3, 0.5, 1.0, np.nan, "tiny"])
def test_invalid_eps(eps):
    raises(ValueError, "eps must be 'auto' or a number in", CE, Y, P, eps=eps)


@pytest.mark.parametrize("s", [-0.1, 1.1, np.nan])
def test_invalid_label_smoothing(s):
    raises(ValueError, "label_smoothing must be a number in", CE, Y, P, label_smoothing=s)


def test_class_weight_checks():
    raises(
        ValueError,
        re.escape("class_weight must have shape (2,)"),
        CE,
        Y,
        P,
        class_weight=[1.0, 2.0, 3.0],
    )
    raises(
        ValueError,
        "class_weight must be finite and non-negative; got -1.0 at position 1",
        CE,
        Y,
        P,
        class_weight=[1.0, -1.0],
    )
    raises(
        ValueError,
        "class_weight must be finite and non-negative; got nan",
        CE,
        Y,
        P,
        class_weight=[np.nan, 1.0],
    )


def test_sample_weight_checks():
    raises(
        ValueError,
        re.escape("sample_weight must have shape (3,)"),
        CE,
        Y,
        P,
        sample_weight=[1.0, 2.0],
    )
    raises(
        ValueError,
        "sample_weight must be finite and non-negative; got -1.0 at position 2",
        CE,
        Y,
        P,
        sample_weight=[1.0, 1.0, -1.0],
    )
    raises(ValueError, "got nan at position 0", fastce.entropy, P, sample_weight=[np.nan, 1, 1])
    raises(ValueError, "got inf", fastce.entropy, P, sample_weight=[np.inf, 1, 1])
    raises(
        ValueError,
        "sample_weight has shape",
        fastce.binary_cross_entropy,
        P,
        P,
        sample_weight=[1.0, 2.0, 3.0, 4.0],
    )


def test_pos_weight_checks():
    raises(
        ValueError,
        "pos_weight has shape",
        fastce.binary_cross_entropy,
        P,
        P,
        pos_weight=[1.0, 2.0, 3.0],
    )
    raises(
        ValueError,
        "pos_weight must be finite and non-negative",
        fastce.binary_cross_entropy,
        P,
        P,
        pos_weight=[1.0, -2.0],
    )


def test_ignore_index_with_soft_targets():
    raises(
        ValueError, "ignore_index applies to class-index targets only", CE, P, P, ignore_index=0
    )
    raises(ValueError, "ignore_index must be None or an integer", CE, Y, P, ignore_index=1.5)


def test_masked_arrays():
    masked = np.ma.masked_array(P, mask=[[0, 0], [0, 1], [0, 0]])
    raises(ValueError, "pred is a masked array with 1 masked entry", CE, Y, masked)
    raises(ValueError, "p is a masked array with 1 masked entry", fastce.entropy, masked)
    raises(ValueError, "target is a masked array", CE, np.ma.masked_array(Y, [1, 0, 0]), P)
    unmasked = np.ma.masked_array(P, mask=False)
    np.testing.assert_array_equal(fastce.entropy(unmasked), fastce.entropy(P))


@pytest.mark.parametrize(
    "bad,exc",
    [
        (np.array([[None, 0.5]], dtype=object), TypeError),
        (np.array([[0.5 + 1j, 0.5]]), TypeError),
        (np.array([["a", "b"]]), TypeError),
        (np.array([["2020-01-01", "2020-01-02"]], dtype="datetime64[D]"), TypeError),
        ([[0.5, 0.5], [0.5]], ValueError),
    ],
    ids=["object", "complex", "strings", "datetime", "ragged"],
)
def test_non_numeric_arrays(bad, exc):
    raises(exc, "p ", fastce.entropy, bad)
    raises(exc, "pred ", CE, [0], bad)


def test_pandas_missing_values_are_rejected():
    pd = pytest.importorskip("pandas")
    s = pd.Series([0.5, pd.NA], dtype="Float64")
    raises(ValueError, r"p holds missing values \(pd.NA\)", fastce.entropy, s)
    df = pd.DataFrame({"a": pd.array([0.5, None], dtype="Float64"), "b": [0.5, 0.5]})
    raises(ValueError, r"pred holds missing values \(pd.NA\) \(column 'a'\)", CE, [0, 1], df)
    labels = pd.Series([1, None], dtype="Int64")
    raises(ValueError, "target holds missing values", CE, labels, P[:2])


def test_zero_dim_and_axis_errors():
    raises(ValueError, "p must have at least one dimension", fastce.entropy, 0.5)
    raises(ValueError, "axis 2 is out of bounds for p with 2 dimension", fastce.entropy, P, axis=2)
    raises(TypeError, "axis must be an integer", fastce.entropy, P, axis=1.0)
    raises(TypeError, "from_logits must be True or False", fastce.entropy, P, from_logits="yes")


def test_labels_beyond_int64():
    raises(ValueError, "does not fit in int64", CE, np.array([2**63, 0, 0], np.uint64), P)
    raises(ValueError, "at position 0", CE, np.array([1e30, 0, 0]), P)


STRING_HINT = (
    r"score class labels with fastce\.log_loss\(y_true, y_proba, labels=\.\.\.\) .*or map "
    r"them to class indices first with classes, target = np\.unique\(target, "
    r"return_inverse=True\)"
)


def _string_columns():
    pd = pytest.importorskip("pandas")
    return [
        ("<U1", np.array(["a", "b", "a"])),
        ("object", np.array(["a", "b", "a"], dtype=object)),
        ("object", pd.Series(["a", "b", "a"])),  # pandas' default string column (object or str)
        ("object", pd.Series(["a", "b", "a"], dtype="string")),
        ("object", pd.Series(["a", "b", "a"], dtype="category")),
    ]


def test_string_labels_say_so_and_point_at_log_loss():
    """A column of class names: what was received, and the two ways to score it, rather than a
    guess at causes that do not apply (mixed types, None, pd.NA)."""
    for dtype, target in _string_columns():
        for function in (CE, fastce.perplexity):
            with pytest.raises(TypeError) as info:
                function(target, np.full((3, 2), 0.5))
            message = str(info.value)
            assert message.startswith("target must be class indices"), message
            assert f"target holds strings (dtype {dtype}): " in message, message
            assert re.search(STRING_HINT, message), message
            assert "mixed types" not in message and "pd.NA" not in message
    # The way it points at works.
    y = np.array(["b", "a", "b"])
    proba = np.array([[0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
    classes, target = np.unique(y, return_inverse=True)
    assert classes.tolist() == ["a", "b"]  # column i of proba is the probability of classes[i]
    assert CE(target, proba, reduction="mean") == pytest.approx(
        fastce.log_loss(y, proba, labels=["a", "b"])
    )
    with pytest.raises(TypeError, match=r"target holds byte strings \(dtype \|S1\)"):
        CE(np.array([b"a", b"b", b"a"]), np.full((3, 2), 0.5))


def test_object_arrays_say_what_they_hold():
    p = np.full((3, 2), 0.5)
    raises(TypeError, r"target holds None at position 1 \(dtype object\)$", CE,
           np.array([0, None, 1], dtype=object), p)  # fmt: skip
    raises(TypeError, r"target holds both strings and numbers \(dtype object\)$", CE,
           np.array(["a", 1, 0], dtype=object), p)  # fmt: skip
    raises(TypeError, r"target holds a dict \(\{\}\) at position 2 \(dtype object\)$", CE,
           np.array([0, 1, {}], dtype=object), p)  # fmt: skip
    pd = pytest.importorskip("pandas")
    raises(TypeError, r"target holds pd\.NA at position 1 \(dtype object\)$", CE,
           np.array([0, pd.NA, 1], dtype=object), p)  # fmt: skip
    # Predictions as text: what they hold, no pointer at labels.
    with pytest.raises(TypeError, match=r"^pred must be a real numeric array .*; pred holds "
                       r"strings \(dtype object\)$"):  # fmt: skip
        CE([0, 1, 0], pd.DataFrame({"a": ["x", "y", "z"], "b": ["x", "y", "z"]}))
