// The recurrent and hybrid encoders and sequence networks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "siamese/core/error.h"
#include "siamese/data/sequence.h"
#include "siamese/model/model_file.h"
#include "siamese/model/network.h"
#include "sequence_test_util.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::expect_error;
using siamese::testing::random_items;
using siamese::testing::temp_dir;

// An item's embedding must not depend on what it is batched with: packing hides the padding.
TEST(RnnEncoder, SameEmbeddingWhateverTheBatchNeighbours) {
  struct Case {
    std::string cell, pooling;
    int64_t vocab, conv_channels, conv_stride, conv_pool;
    bool bidirectional;
  };
  for (const auto& c : {Case{"lstm", "last", 0, 0, 1, 1, true}, Case{"lstm", "mean", 20, 0, 1, 1, false},
                        Case{"gru", "max", 20, 6, 2, 1, true}, Case{"gru", "last", 0, 4, 1, 1, false},
                        Case{"lstm", "mean", 0, 5, 3, 1, true}, Case{"lstm", "max", 20, 5, 1, 4, true},
                        Case{"gru", "mean", 0, 3, 2, 3, false}}) {
    SCOPED_TRACE(c.cell + " " + c.pooling + " vocab " + std::to_string(c.vocab) + " conv " + std::to_string(c.conv_channels) +
                 " pool " + std::to_string(c.conv_pool));
    torch::manual_seed(3);
    RnnEncoder enc(RnnEncoderOptions().cell(parse_cell(c.cell)).pooling(parse_pooling(c.pooling)).vocab_size(c.vocab).token_dim(5).features(3)
                       .conv_channels(c.conv_channels).conv_kernel(3).conv_stride(c.conv_stride).conv_pool(c.conv_pool).hidden(7).layers(2)
                       .bidirectional(c.bidirectional).embedding_dim(4));
    enc->eval();
    SequenceDataset d(random_items({5, 1, 12, 3, 9}, c.vocab, 3), {0, 0, 1, 1, 2}, "mem", {}, c.vocab > 0);
    auto batched = enc->forward(d.gather({0, 1, 2, 3, 4}));
    for (int64_t i = 0; i < 5; ++i) {
      auto alone = enc->forward(d.gather({i}));
      EXPECT_TRUE(torch::allclose(alone[0], batched[i], 1e-5, 1e-6)) << "item " << i;
    }
    // Garbage in the padded steps changes nothing either.
    auto x = d.gather({1, 2});
    auto noisy = x.clone();
    noisy[0].narrow(0, 1, x.size(1) - 1).narrow(1, 1, x.size(2) - 1).fill_(c.vocab > 0 ? 7 : 1e3);
    EXPECT_TRUE(torch::allclose(enc->forward(x), enc->forward(noisy), 1e-6, 1e-6));
  }
  RnnEncoder enc(RnnEncoderOptions().features(2));
  expect_error([&] { enc->forward(torch::zeros({2, 4, 2})); },
               ErrorCode::InvalidArgument, "expected a sequence batch", "[2, 4, 2]");
  expect_error([&] { enc->forward(torch::zeros({1, 4, 3})); }, ErrorCode::InvalidArgument, "rnn encoder", "no steps");
  RnnEncoder tokens(RnnEncoderOptions().vocab_size(5));
  expect_error([&] { tokens->forward(torch::tensor({1.0f, 9.0f}).view({1, 1, 2})); },
               ErrorCode::InvalidArgument, "token id", "5");
}

// The per-direction recurrent layers against torch::nn's own bidirectional LSTM/GRU forward on
// an item alone (no padding): the same weights must give the same states.
TEST(RnnEncoder, EqualsTheModulesOwnBidirectionalForward) {
  for (const std::string cell : {"lstm", "gru"}) {
    for (const std::string pooling : {"last", "mean"}) {
      SCOPED_TRACE(cell + " " + pooling);
      torch::manual_seed(11);
      RnnEncoder enc(RnnEncoderOptions().cell(parse_cell(cell)).features(3).hidden(5).layers(2).pooling(parse_pooling(pooling)).embedding_dim(4));
      enc->eval();
      auto steps = torch::randn({7, 3});
      auto got = enc->forward(SequenceDataset({steps}, {0}, "mem").gather({0}));
      torch::Tensor out, states;  // [1, 7, 10], [layers · 2, 1, 5]
      if (cell == "lstm") {
        auto r = enc->lstm->forward(steps.unsqueeze(0));
        out = std::get<0>(r), states = std::get<0>(std::get<1>(r));
      } else {
        auto r = enc->gru->forward(steps.unsqueeze(0));
        out = std::get<0>(r), states = std::get<1>(r);
      }
      auto pooled = pooling == "last" ? torch::cat({states[-2], states[-1]}, 1) : out.mean(1);
      EXPECT_TRUE(torch::allclose(got, enc->head->forward(pooled), 1e-5, 1e-6));
    }
  }
}

// With 0 layers the encoder is a bag of tokens: the head applied to the mean (or max) of the
// token embeddings of the item's own steps, whatever it is batched with. It leaves <unk> (id 0)
// out, which stands for tokens training never had; an item of <unk> alone embeds as <unk>.
TEST(RnnEncoder, NoLayersPoolsTheTokenEmbeddingsDirectly) {
  // Mean pooling over 20 tokens is computed from the token counts, over 1,000 (> 64 x 12 steps) by a gather.
  for (const auto& [pooling, vocab] : std::vector<std::pair<std::string, int64_t>>{{"mean", 20}, {"mean", 1000}, {"max", 20}}) {
    SCOPED_TRACE(pooling + " over " + std::to_string(vocab) + " tokens");
    torch::manual_seed(13);
    RnnEncoder enc(RnnEncoderOptions().vocab_size(vocab).token_dim(6).layers(0).pooling(parse_pooling(pooling)).embedding_dim(4));
    enc->eval();
    EXPECT_FALSE(enc->lstm);
    EXPECT_FALSE(enc->gru);
    auto items = random_items({5, 1, 12}, 20, 1);
    auto batched = enc->forward(SequenceDataset(items, {0, 1, 2}, "mem", {}, true).gather({0, 1, 2}));
    std::vector<torch::Tensor> by_hand;
    for (int64_t i = 0; i < 3; ++i) {
      auto vectors = enc->embedding->weight.index_select(0, items[i].view(-1).to(torch::kInt64));
      auto pooled = pooling == "mean" ? vectors.mean(0) : std::get<0>(vectors.max(0));
      by_hand.push_back(enc->head->forward(pooled.unsqueeze(0))[0]);
      EXPECT_TRUE(torch::allclose(batched[i], by_hand.back(), 1e-5, 1e-6)) << "item " << i;
    }
    // The same gradient for the token table, whichever way the forward pass computed the pooling.
    auto weights = torch::randn({3, 4});
    auto table_grad = [&](const torch::Tensor& embeddings) {
      enc->zero_grad();
      (embeddings * weights).sum().backward({}, true);
      return enc->embedding->weight.grad().clone();
    };
    EXPECT_TRUE(torch::allclose(table_grad(batched), table_grad(torch::stack(by_hand)), 1e-5, 1e-6));

    auto ids = [](std::vector<float> v) { return torch::tensor(v).view({-1, 1}); };
    std::vector<torch::Tensor> with_unk{ids({3, 0, 7, 0, 0, 3, 9, 0, 0, 0, 0, 0}), ids({3, 7, 3, 9}), ids({0, 0}), ids({0})};
    auto e = enc->forward(SequenceDataset(with_unk, {0, 0, 1, 1}, "mem", {}, true).gather({0, 1, 2, 3}));
    EXPECT_TRUE(torch::allclose(e[0], e[1], 1e-5, 1e-6));
    auto unk = enc->head->forward(enc->embedding->weight.narrow(0, 0, 1))[0];
    EXPECT_TRUE(torch::allclose(e[2], unk, 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(e[3], unk, 1e-5, 1e-6));
    // Nothing flows back to <unk> from an item that has known tokens.
    auto grad = table_grad(e.narrow(0, 0, 1).repeat({3, 1}));
    EXPECT_EQ(grad[0].abs().sum().item<float>(), 0.0f);
    EXPECT_GT(grad[3].abs().sum().item<float>(), 0.0f);
  }
  expect_error([] { RnnEncoder(RnnEncoderOptions().layers(0).pooling(Pooling::Last)); },
               ErrorCode::InvalidArgument, "0 recurrent layers", "mean or max");
  expect_error([] { RnnEncoder(RnnEncoderOptions().layers(-1)); },
               ErrorCode::InvalidArgument, "rnn encoder", "layers >= 0");
}

// Backpropagation through the recurrent layers against central differences, in float64.
TEST(RnnEncoder, GradientsMatchFiniteDifferences) {
  for (const std::string cell : {"lstm", "gru"}) {
    SCOPED_TRACE(cell);
    torch::manual_seed(5);
    RnnEncoder enc(RnnEncoderOptions().cell(parse_cell(cell)).features(2).conv_channels(3).conv_kernel(3)
                       .conv_pool(cell == "gru" ? 2 : 1).hidden(4).layers(2).pooling(Pooling::Mean).embedding_dim(3));
    enc->to(torch::kFloat64);
    SequenceDataset d(random_items({4, 2, 6}, 0, 2), {0, 1, 2}, "mem");
    auto x = d.gather({0, 1, 2}).to(torch::kFloat64);
    auto weights = torch::randn({3, 3}, torch::kFloat64);
    auto f = [&] { return (enc->forward(x) * weights).sum(); };
    enc->zero_grad();
    f().backward();
    for (auto& p : enc->parameters()) {
      auto flat = p.data().view(-1);
      const auto grad = p.grad().view(-1).clone();
      for (int64_t i : {int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
        const double h = 1e-6, saved = flat[i].item<double>();
        torch::NoGradGuard no_grad;
        flat[i] = saved + h;
        const double up = f().item<double>();
        flat[i] = saved - h;
        const double down = f().item<double>();
        flat[i] = saved;
        EXPECT_NEAR(grad[i].item<double>(), (up - down) / (2 * h), 1e-6);
      }
    }
  }
}

TEST(HybridEncoder, EncodesEachColumnThenRunsTheRnnOverThem) {
  torch::manual_seed(9);
  auto cnn = CnnEncoderOptions().height(8).width(12).conv_channels({4}).hidden(0).embedding_dim(5);
  auto rnn = RnnEncoderOptions().hidden(6).embedding_dim(3).pooling(Pooling::Last);
  HybridEncoder hybrid(cnn, rnn, 3);
  hybrid->eval();
  auto x = torch::rand({2, 1, 8, 12});
  auto e = hybrid->forward(x);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{2, 3}));
  // By hand: column f of image i is x[i, :, :, 4f : 4f + 4].
  std::vector<torch::Tensor> columns;
  for (int64_t f = 0; f < 3; ++f) columns.push_back(hybrid->cnn->forward(x.narrow(3, 4 * f, 4)));
  auto features = torch::stack(columns, 1);  // [2, 3, 5]
  auto expected = hybrid->rnn->forward(torch::cat({torch::ones({2, 3, 1}), features}, 2));
  EXPECT_TRUE(torch::allclose(e, expected, 1e-5, 1e-6));
  expect_error([&] { HybridEncoder(cnn, rnn, 5); }, ErrorCode::InvalidArgument, "width 12", "5 frames");
}

TEST(SequenceNetwork, SaveLoadKeepsVocabularyAndOutputsAndPairsOfUnequalLength) {
  torch::manual_seed(11);
  SiameseNetwork net(SiameseNetworkOptions()
                         .encoder(EncoderKind::Gru)
                         .rnn(RnnEncoderOptions().token_dim(4).hidden(5).embedding_dim(3))
                         .tokens("word")
                         .vocabulary({"<unk>", "the", "lord", "god"})
                         .distance(Distance::MaLSTM));
  EXPECT_EQ(net->options.rnn().vocab_size(), 4);
  net->eval();
  SequenceDataset d(random_items({3, 6}, 4, 1), {0, 1}, "mem", {}, true);
  auto a = d.gather({0}), b = d.gather({1});
  auto both = net->embed(d.gather({0, 1}));
  auto dist = net->forward(a, b);  // T = 3 and T = 6: padded inside
  EXPECT_NEAR(dist.item<double>(), 1 - std::exp(-(both[0] - both[1]).abs().sum().item<double>()), 1e-6);
  auto dir = temp_dir("seqnet");
  const auto path = (dir / "m.pt").string();
  save_model(path, net, 0.5);
  auto loaded = load_model(path);
  EXPECT_EQ(loaded.network->options.vocabulary(), net->options.vocabulary());
  EXPECT_EQ(loaded.network->options.tokens(), "word");
  EXPECT_EQ(loaded.network->options.encoder(), EncoderKind::Gru);
  EXPECT_TRUE(torch::equal(loaded.network->embed(d.gather({0, 1})), both));
  EXPECT_EQ(model_fingerprint(loaded.network), model_fingerprint(net));
}
