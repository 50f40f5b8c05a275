"""SequenceEncoder over both layers: padding invariance, causality, last_only, scores."""

import pytest
import torch

from seqrec.layers import LiGRLayer, SASRecLayer, attention_mask
from seqrec.model import SequenceEncoder

LAYERS = {"sasrec": SASRecLayer, "ligr": LiGRLayer}
ATOL = 1e-5
N_ITEMS, DIM, MAX_LEN = 20, 16, 10


def _encoder(name: str, n_layers: int = 2, with_mask_token: bool = False) -> SequenceEncoder:
    torch.manual_seed(0)
    layers = [LAYERS[name](DIM, 2, 0.3, 2) for _ in range(n_layers)]
    encoder = SequenceEncoder(N_ITEMS, DIM, MAX_LEN, 0.3, layers, with_mask_token=with_mask_token)
    return encoder.eval()


INPUTS = torch.tensor([[0, 0, 0, 3, 7, 1], [4, 5, 6, 7, 8, 9], [0, 0, 0, 0, 0, 2]])


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_extra_left_padding_never_changes_outputs(name, causal):
    encoder = _encoder(name)
    padded = torch.cat([torch.zeros(3, 4, dtype=torch.int64), INPUTS], dim=1)
    with torch.no_grad():
        short, long = encoder.encode(INPUTS, causal), encoder.encode(padded, causal)
    real = INPUTS != 0
    torch.testing.assert_close(long[:, 4:][real], short[real], atol=ATOL, rtol=0)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_pad_embedding_content_never_changes_outputs(name, causal):
    encoder = _encoder(name)
    with torch.no_grad():
        clean = encoder.encode(INPUTS, causal)
        encoder.item_embedding.weight[0] = 100.0  # what a PAD row holds must not matter
        dirty = encoder.encode(INPUTS, causal)
    real = INPUTS != 0
    torch.testing.assert_close(dirty[real], clean[real], atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_causal_encoder_outputs_up_to_t_ignore_item_at_t_plus_1(name):
    encoder = _encoder(name)
    inputs = torch.tensor([[0, 1, 2, 3, 4, 5, 6], [9, 8, 7, 6, 5, 4, 3]])
    for t in range(1, 6):
        changed = inputs.clone()
        changed[:, t + 1] = 11
        with torch.no_grad():
            before, after = encoder.encode(inputs, True), encoder.encode(changed, True)
        torch.testing.assert_close(after[1:, : t + 1], before[1:, : t + 1], atol=ATOL, rtol=0)
        torch.testing.assert_close(after[:1, 1 : t + 1], before[:1, 1 : t + 1], atol=ATOL, rtol=0)
        assert not torch.allclose(after[:, t + 1], before[:, t + 1], atol=ATOL)


@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_last_only_equals_last_position_of_full_forward(name, causal, n_layers):
    encoder = _encoder(name, n_layers)
    with torch.no_grad():
        full = encoder.encode(INPUTS, causal)
        last = encoder.encode(INPUTS, causal, last_only=True)
    assert last.shape == (3, DIM)
    torch.testing.assert_close(last, full[:, -1], atol=ATOL, rtol=0)


def test_scores_cover_pad_and_catalogue_only_with_pad_at_minus_inf():
    encoder = _encoder("ligr", with_mask_token=True)
    assert encoder.item_embedding.num_embeddings == N_ITEMS + 2  # PAD, items, MASK
    hidden = encoder.encode(INPUTS, causal=False, last_only=True)
    scores = encoder.scores(hidden)
    assert scores.shape == (3, N_ITEMS + 1) and scores.dtype == torch.float32
    assert torch.isneginf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    expected = hidden @ encoder.item_embedding.weight[1 : N_ITEMS + 1].T
    torch.testing.assert_close(scores[:, 1:], expected, atol=ATOL, rtol=0)


def test_inputs_longer_than_max_seq_len_raise_with_the_shape():
    encoder = _encoder("sasrec", 1)
    with pytest.raises(ValueError, match=r"\(1, 11\)"):
        encoder.encode(torch.ones(1, MAX_LEN + 1, dtype=torch.int64), causal=True)


def test_item_dropout_acts_in_training_only_and_drops_whole_entries_of_the_table():
    torch.manual_seed(0)
    encoder = SequenceEncoder(200, 64, MAX_LEN, 0.0, [LiGRLayer(64, 1, 0.0, 2)], item_dropout=0.5)
    weight = encoder.item_embedding.weight
    assert encoder.eval().item_table() is weight  # inference sees the plain table
    table = encoder.train().item_table()
    kept = table[1:] != 0
    assert 0.45 < kept.float().mean().item() < 0.55
    torch.testing.assert_close(table[1:][kept], 2 * weight[1:][kept])  # inverted dropout scaling


def test_encode_looks_inputs_up_in_the_table_it_is_given():
    encoder = _encoder("ligr", 1)
    table = encoder.item_embedding.weight.detach().clone()
    with torch.no_grad():
        plain = encoder.encode(INPUTS, True)
        table[7] += 1.0  # item 7 sits at position 4 of row 0 and position 3 of row 1
        changed = encoder.encode(INPUTS, True, table=table)
    torch.testing.assert_close(changed[:, :3], plain[:, :3], atol=ATOL, rtol=0)
    assert not torch.allclose(changed[0, 4], plain[0, 4], atol=ATOL)
    assert not torch.allclose(changed[1, 3], plain[1, 3], atol=ATOL)


def test_without_final_norm_the_encoder_returns_the_last_block_output():
    torch.manual_seed(0)
    layer = LiGRLayer(DIM, 2, 0.0, 2)
    encoder = SequenceEncoder(N_ITEMS, DIM, MAX_LEN, 0.0, [layer], final_norm=False).eval()
    assert isinstance(encoder.final_norm, torch.nn.Identity)
    with torch.no_grad():
        x = encoder.item_embedding(INPUTS) + encoder.position_embedding.weight[-INPUTS.shape[1]:]
        expected = layer(x * (INPUTS != 0).unsqueeze(-1), attention_mask(INPUTS == 0, True))
        torch.testing.assert_close(encoder.encode(INPUTS, True), expected, atol=ATOL, rtol=0)


def test_cosine_similarity_scores_are_cosines_over_the_temperature():
    torch.manual_seed(0)
    encoder = SequenceEncoder(N_ITEMS, DIM, MAX_LEN, 0.0, [LiGRLayer(DIM, 2, 0.0, 2)],
                              similarity="cosine", temperature=0.05).eval()
    with torch.no_grad():
        plain = SequenceEncoder(N_ITEMS, DIM, MAX_LEN, 0.0, [encoder.layers[0]]).eval()
        plain.load_state_dict(encoder.state_dict())
        h = plain.encode(INPUTS, True, last_only=True)  # (3, DIM), before normalisation
        table = encoder.item_embedding.weight[: N_ITEMS + 1]
        expected = torch.nn.functional.cosine_similarity(h[:, None], table[None], dim=-1) / 0.05
        scores = encoder.scores(encoder.encode(INPUTS, True, last_only=True))
    torch.testing.assert_close(scores[:, 1:], expected[:, 1:], atol=1e-4, rtol=1e-5)
    assert torch.isneginf(scores[:, 0]).all()
    assert scores[:, 1:].abs().max() <= 1 / 0.05 + 1e-3  # |cos| <= 1
    # the candidate table is unit-norm (PAD stays zero); the input lookups are not normalised
    norms = encoder.candidate_embeddings().norm(dim=1)
    torch.testing.assert_close(norms[1:], torch.ones(N_ITEMS), atol=1e-5, rtol=0)
    assert norms[0] == 0


def _deep_encoder(stochastic_depth: float, n_layers: int = 3) -> SequenceEncoder:
    torch.manual_seed(0)  # same weights whatever the rate: the rate draws no parameters
    layers = [LiGRLayer(DIM, 2, 0.0, 2) for _ in range(n_layers)]
    return SequenceEncoder(N_ITEMS, DIM, MAX_LEN, 0.0, layers, stochastic_depth=stochastic_depth)


def test_stochastic_depth_rates_rise_linearly_from_zero_and_never_touch_a_single_block():
    assert _deep_encoder(0.6, 4).skip_rates == pytest.approx([0.0, 0.2, 0.4, 0.6])
    assert _deep_encoder(0.6, 1).skip_rates == [0.0]
    single, plain = _deep_encoder(0.6, 1).train(), _deep_encoder(0.0, 1).train()
    torch.manual_seed(1)
    with_rate = single.encode(INPUTS, True)
    torch.manual_seed(1)  # no extra random draws either: one block trains bit for bit as before
    assert torch.equal(with_rate, plain.encode(INPUTS, True))


def test_stochastic_depth_keeps_or_skips_whole_sequences_and_is_unbiased():
    encoder = _deep_encoder(0.5).train()
    x = torch.randn(4000, 3, DIM)
    out = x + torch.linspace(-1, 1, DIM)  # a block that adds a fixed change
    torch.manual_seed(0)
    mixed = encoder._skip_block(x, out, 0.5)
    skipped = (mixed == x).all(dim=(1, 2))
    kept = torch.isclose(mixed, x + 2 * (out - x), atol=1e-6).all(dim=(1, 2))
    assert bool((skipped ^ kept).all())  # each sequence is wholly one or the other
    assert 0.47 < skipped.float().mean().item() < 0.53
    # E[keep (out - x) / (1 - p)] = out - x: the mean change over sequences is the block's
    change = (mixed - x).mean(0)
    torch.testing.assert_close(change, (out - x).mean(0), atol=0.05, rtol=0)


def test_stochastic_depth_is_off_at_inference():
    with torch.no_grad():
        deep = _deep_encoder(0.9).eval().encode(INPUTS, True)
        plain = _deep_encoder(0.0).eval().encode(INPUTS, True)
    assert torch.equal(deep, plain)
