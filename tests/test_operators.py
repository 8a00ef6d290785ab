import pytest
import torch

from cogenerate.operators import Downsample, FunctionOperator, Gaussian, Laplace, Mask, make_noise


def test_gaussian_log_prob_matches_torch():
    r = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0))
    count = torch.tensor([5.0, 5.0])
    expected = torch.distributions.Normal(0.0, 0.3).log_prob(r).sum(-1)
    torch.testing.assert_close(Gaussian(0.3).log_prob(r, count), expected)


def test_laplace_log_prob_matches_torch():
    r = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0))
    expected = torch.distributions.Laplace(0.0, 0.2).log_prob(r).sum(-1)
    torch.testing.assert_close(Laplace(0.2).log_prob(r, torch.tensor([5.0, 5.0])), expected)


def test_mask_hides_entries_and_counts_observed():
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    op = Mask(mask)
    x = torch.ones(2, 4, 3)
    assert torch.equal(op(x)[:, 0], mask)
    torch.testing.assert_close(op.observed_count(2, (3,)), torch.tensor([2.0, 1.0]))


@pytest.mark.parametrize("bad", [torch.tensor([0.5, 1.0]), torch.tensor([float("nan"), 1.0])])
def test_mask_rejects_non_binary(bad):
    with pytest.raises(ValueError, match="mask"):
        Mask(bad)


def test_mask_shape_mismatch_is_value_error():
    with pytest.raises(ValueError, match="does not broadcast"):
        Mask(torch.ones(4)).validate(2, (3,))


def test_downsample_averages_blocks():
    x = torch.arange(16.0).reshape(1, 1, 1, 4, 4)
    y = Downsample(2)(x)
    torch.testing.assert_close(y[0, 0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    assert Downsample(2).observed_count(3, (1, 4, 4)).tolist() == [4.0, 4.0, 4.0]
    with pytest.raises(ValueError, match="divisible"):
        Downsample(3).validate(1, (1, 4, 4))


def test_function_operator_applies_per_sample():
    op = FunctionOperator(lambda x: x[:, :2] * 2)
    y = op(torch.ones(2, 3, 5))
    assert y.shape == (2, 3, 2) and torch.all(y == 2)
    assert op.observed_count(2, (5,)).tolist() == [2.0, 2.0]


def test_make_noise_rejects_unknown_and_nonpositive():
    with pytest.raises(ValueError, match="unknown noise"):
        make_noise("cauchy", 1.0)
    with pytest.raises(ValueError, match="positive"):
        make_noise("gaussian", 0.0)


@pytest.mark.parametrize("noise", [Gaussian(0.05), Laplace(0.05)])
def test_evidence_correction_turns_the_tempered_normaliser_into_an_evidence(noise):
    # One latent, G(z) = a·z + c, five observed values: integrate both sides on a fine grid.
    z = torch.linspace(-12, 12, 400_001, dtype=torch.float64)
    a, c = torch.tensor([1.0, -0.5, 2.0, 0.3, 0.8], dtype=torch.float64), 0.1
    y = torch.tensor([0.7, -0.2, 1.5, 0.4, 0.5], dtype=torch.float64)
    residual = (a * z[:, None] + c - y).reshape(1, -1, 5)
    count = torch.tensor([5.0], dtype=torch.float64)
    log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(z)

    def log_integral(log_f):
        return torch.log(torch.trapezoid((log_prior + log_f).exp(), z))

    for beta in (0.01, 0.2, 0.7):
        b = torch.tensor([beta], dtype=torch.float64)
        tempered = log_integral(beta * noise.log_prob(residual, count)[0])
        wider = type(noise)(float(noise.tempered_scale(b)))
        expected = log_integral(wider.log_prob(residual, count)[0])
        torch.testing.assert_close(tempered + noise.evidence_correction(b, count)[0], expected)
