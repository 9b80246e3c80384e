// The nested Monte-Carlo search core of CMAB-NAS (robustfast.nas; the Python oracle robustfast.reference.nmcs
// defines every step and reproduces these trees element for element on the same seeds).
//
// A problem is D choices with K_d arms at depth d. The tree is an arena of nodes in struct-of-arrays form
// (visits, pending, total, parent, arm); node 0 is the root, a node at depth d holds the statistics of the arm
// chosen at depth d − 1. Its children are sparse: a block of a shared pool (arm ascending, child node, and the
// child's UCB terms mean and 1/sqrt(n)), grown by doubling from one entry. Nothing is allocated per node and
// reset() keeps the capacity, so a search allocates nothing once the arena has grown (per playout the old core's
// per-node vectors spent most of their time in malloc and free).
//   sample:  untried arm (by rank among the untried, SplitMix64) if any, else UCB
//            argmax_j total_j/n_j + α·sqrt(2 ln n_i)·(1/sqrt(n_j)), n = visits + pending, ties to the lowest arm
//   update:  each node of the path: visits += 1, total += share·R, pending −= 1 (not below 0)
//   nested:  Cazenave's level-n NMCS with its memorised best sequence
// Rewards come from built-in synthetic problems or a batched Python callback; the GIL is released while the core
// runs and taken only around the callback.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

struct SplitMix64 {
  uint64_t state;
  explicit SplitMix64(uint64_t seed) : state(seed) {}
  uint64_t next() {
    state += 0x9E3779B97F4A7C15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  int64_t below(int64_t k) { return static_cast<int64_t>(static_cast<double>(next() >> 11) * 0x1.0p-53 * k); }
  double normal() {
    const double u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * M_PI * u2);
  }
};

constexpr uint64_t kNoiseSalt = 0x5DEECE66DULL;

std::vector<int64_t> check_arm_counts(const std::vector<int64_t>& arms) {
  if (arms.empty()) throw py::value_error("arm_counts must not be empty");
  for (int64_t k : arms)
    if (k < 1) throw py::value_error("arm_counts must all be >= 1, got " + std::to_string(k));
  return arms;
}

// Scores complete paths (n × D, row-major) into out (n).
class Problem {
 public:
  explicit Problem(std::vector<int64_t> arms) : arms_(check_arm_counts(arms)) {}
  virtual ~Problem() = default;
  virtual void score(const int64_t* paths, int64_t n, double* out) = 0;
  const std::vector<int64_t>& arms() const { return arms_; }
  int64_t depth() const { return static_cast<int64_t>(arms_.size()); }

 protected:
  std::vector<int64_t> arms_;
};

// reward = mean_d w[d][a_d] + σ·N(0, 1); weights as the oracle draws them (passed in), noise from seed ^ salt.
class Separable : public Problem {
 public:
  Separable(std::vector<int64_t> arms, std::vector<double> weights, double sigma, uint64_t seed)
      : Problem(std::move(arms)), w_(std::move(weights)), sigma_(sigma), noise_(seed ^ kNoiseSalt) {
    int64_t off = 0;
    for (int64_t k : arms_) {
      offsets_.push_back(off);
      off += k;
    }
    if (static_cast<int64_t>(w_.size()) != off) throw py::value_error("weights must hold sum(arm_counts) values");
  }
  void score(const int64_t* paths, int64_t n, double* out) override {
    const int64_t D = depth();
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += w_[offsets_[d] + paths[i * D + d]];
      out[i] = s / static_cast<double>(D);
      if (sigma_ > 0) out[i] += sigma_ * noise_.normal();
    }
  }

 private:
  std::vector<double> w_;
  std::vector<int64_t> offsets_;
  double sigma_;
  SplitMix64 noise_;
};

// Correct-prefix length / D against a target path; with a trap, a path starting with the trap move scores 0.5.
class Prefix : public Problem {
 public:
  Prefix(std::vector<int64_t> arms, std::vector<int64_t> target, int64_t trap)
      : Problem(std::move(arms)), target_(std::move(target)), trap_(trap) {}
  void score(const int64_t* paths, int64_t n, double* out) override {
    const int64_t D = depth();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t* p = paths + i * D;
      if (trap_ >= 0 && p[0] == trap_) {
        out[i] = 0.5;
        continue;
      }
      int64_t k = 0;
      while (k < D && p[k] == target_[k]) ++k;
      out[i] = static_cast<double>(k) / static_cast<double>(D);
    }
  }

 private:
  std::vector<int64_t> target_;
  int64_t trap_;
};

// fn(paths: LongTensor n × D) -> FloatTensor (n,) of finite rewards. Called with the GIL held.
class Callback : public Problem {
 public:
  Callback(std::vector<int64_t> arms, py::function fn) : Problem(std::move(arms)), fn_(std::move(fn)) {}
  ~Callback() override {
    py::gil_scoped_acquire gil;
    fn_ = py::function();
  }
  void score(const int64_t* paths, int64_t n, double* out) override {
    const int64_t D = depth();
    py::gil_scoped_acquire gil;
    at::Tensor t = at::empty({n, D}, at::kLong);
    std::copy(paths, paths + n * D, t.mutable_data_ptr<int64_t>());
    py::object result = fn_(t);
    at::Tensor r;
    try {
      r = result.cast<at::Tensor>();
    } catch (const py::cast_error&) {
      throw py::value_error("callback must return a tensor of " + std::to_string(n) + " rewards, got " +
                            std::string(py::str(result.get_type())));
    }
    if (r.dim() != 1 || r.size(0) != n || !(r.is_floating_point() || r.scalar_type() == at::kLong))
      throw py::value_error("callback must return a float tensor of shape (" + std::to_string(n) + ",), got shape " +
                            std::string(py::str(py::cast(r.sizes().vec()))));
    at::Tensor d = r.detach().to(at::kCPU, at::kDouble).contiguous();
    const double* p = d.const_data_ptr<double>();
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(p[i])) throw py::value_error("callback returned a non-finite reward (NaN or inf)");
      out[i] = p[i];
    }
  }

 private:
  py::function fn_;
};

class Tree {
 public:
  Tree(std::vector<int64_t> arms, double alpha, double share, uint64_t seed)
      : arms_(check_arm_counts(arms)), D_(static_cast<int64_t>(arms_.size())), alpha_(alpha), share_(share),
        rng_(seed) {
    if (!(alpha >= 0) || !std::isfinite(alpha)) throw py::value_error("alpha must be finite and >= 0");
    reset();
  }

  void reset() {
    for (auto* v : {&visits_, &pending_}) v->clear();
    for (auto* v : {&parent_, &arm_, &off_, &count_, &cap_}) v->clear();
    total_.clear();
    for (auto* v : {&pool_arm_, &pool_node_}) v->clear();
    pool_mean_.clear();
    pool_isq_.clear();
    new_node(-1, -1);
  }
  void reseed(uint64_t seed) { rng_ = SplitMix64(seed); }
  void set_alpha(double alpha) {
    if (!(alpha >= 0) || !std::isfinite(alpha)) throw py::value_error("alpha must be finite and >= 0");
    alpha_ = alpha;
  }
  int64_t depth() const { return D_; }
  const std::vector<int64_t>& arms() const { return arms_; }

  void check_prefix(const std::vector<int64_t>& prefix, bool full, const char* name) const {
    const int64_t len = static_cast<int64_t>(prefix.size());
    if (len > D_ || (full && len != D_))
      throw py::value_error(std::string(name) + " has length " + std::to_string(len) + ", the tree has depth " +
                            std::to_string(D_));
    for (int64_t d = 0; d < len; ++d)
      if (prefix[d] < 0 || prefix[d] >= arms_[d])
        throw py::value_error(std::string(name) + "[" + std::to_string(d) + "] = " + std::to_string(prefix[d]) +
                              " is out of range [0, " + std::to_string(arms_[d]) + ")");
  }

  void check_paths(const int64_t* paths, const double* rewards, int64_t n) const {
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t d = 0; d < D_; ++d) {
        const int64_t a = paths[i * D_ + d];
        if (a < 0 || a >= arms_[d])
          throw py::value_error("paths[" + std::to_string(i) + ", " + std::to_string(d) + "] = " + std::to_string(a) +
                                " is out of range [0, " + std::to_string(arms_[d]) + ")");
      }
      if (!std::isfinite(rewards[i])) throw py::value_error("rewards must be finite");
    }
  }

  // n complete paths from the node of a checked `prefix` into out (n × D), pending visits on every node crossed.
  void sample(const std::vector<int64_t>& prefix, int64_t n, int64_t* out) {
    const int64_t fixed = static_cast<int64_t>(prefix.size());
    for (int64_t i = 0; i < n; ++i) {
      int64_t node = 0;
      ++pending_[0];
      for (int64_t d = 0; d < D_; ++d) {
        const int64_t a = d < fixed ? prefix[d] : select(node, d);
        const int64_t e = entry(node, a, d);
        node = pool_node_[e];
        ++pending_[node];
        refresh(e, node);
        out[i * D_ + d] = a;
      }
    }
  }

  // Backs up n checked paths (n × D) with their rewards.
  void update(const int64_t* paths, const double* rewards, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      const double r = share_ * rewards[i];
      int64_t node = 0;
      backup(node, r);
      for (int64_t d = 0; d < D_; ++d) {
        const int64_t e = entry(node, paths[i * D_ + d], d);
        node = pool_node_[e];
        backup(node, r);
        refresh(e, node);
      }
    }
  }

  // The arm committed at the node of `prefix`: by rank of mean reward (0 = best, ties to the lowest arm) among
  // visited children, or uniform over all arms when rank < 0.
  int64_t policy(const std::vector<int64_t>& prefix, int64_t rank) {
    check_prefix(prefix, false, "prefix");
    if (static_cast<int64_t>(prefix.size()) == D_) throw py::value_error("prefix is a complete path: no arm to pick");
    const int64_t K = arms_[prefix.size()];
    if (rank < 0) return rng_.below(K);
    const int64_t node = find(prefix);
    std::vector<std::pair<double, int64_t>> ranked;
    if (node >= 0) {
      for (int64_t e = off_[node]; e < off_[node] + count_[node]; ++e) {
        const int64_t c = pool_node_[e];
        if (visits_[c] > 0) ranked.emplace_back(-(total_[c] / static_cast<double>(visits_[c])), pool_arm_[e]);
      }
    }
    if (rank >= static_cast<int64_t>(ranked.size()))
      throw py::value_error("rank " + std::to_string(rank) + " asked but the node has only " +
                            std::to_string(ranked.size()) + " visited arms");
    std::sort(ranked.begin(), ranked.end());
    return ranked[rank].second;
  }

  // (arms, visits, pending, total) of the children of the node of `prefix`; empty when the node does not exist.
  std::vector<std::vector<double>> child_stats(const std::vector<int64_t>& prefix) const {
    check_prefix(prefix, false, "prefix");
    std::vector<std::vector<double>> out(4);
    const int64_t node = find(prefix);
    if (node < 0) return out;
    for (int64_t e = off_[node]; e < off_[node] + count_[node]; ++e) {
      const int64_t c = pool_node_[e];
      out[0].push_back(static_cast<double>(pool_arm_[e]));
      out[1].push_back(static_cast<double>(visits_[c]));
      out[2].push_back(static_cast<double>(pending_[c]));
      out[3].push_back(total_[c]);
    }
    return out;
  }

  // L playouts from the node of a checked `prefix`, `batch` per call of the problem; the best (reward, path).
  std::pair<double, std::vector<int64_t>> simulate(Problem& problem, const std::vector<int64_t>& prefix, int64_t L,
                                                   int64_t batch) {
    double best = -std::numeric_limits<double>::infinity();
    std::vector<int64_t> best_path(D_, 0);
    batch = std::min(batch, L);
    std::vector<int64_t> paths(batch * D_);
    std::vector<double> rewards(batch);
    for (int64_t done = 0; done < L; done += batch) {
      const int64_t n = std::min(batch, L - done);
      sample(prefix, n, paths.data());
      problem.score(paths.data(), n, rewards.data());
      update(paths.data(), rewards.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        if (rewards[i] > best) {
          best = rewards[i];
          std::copy(paths.begin() + i * D_, paths.begin() + (i + 1) * D_, best_path.begin());
        }
      }
    }
    return {best, best_path};
  }

  // SearchBest: at each depth, L playouts from the committed prefix (or the root), then commit by the policy.
  std::vector<int64_t> search_best(Problem& problem, int64_t L, int64_t rank, bool from_root, int64_t batch) {
    std::vector<int64_t> prefix;
    for (int64_t d = 0; d < D_; ++d) {
      simulate(problem, from_root ? std::vector<int64_t>{} : prefix, L, batch);
      prefix.push_back(policy(prefix, rank));
    }
    return prefix;
  }

  std::pair<double, std::vector<int64_t>> nested(Problem& problem, int64_t level, std::vector<int64_t> prefix) {
    if (level == 0 || static_cast<int64_t>(prefix.size()) == D_) {
      for (int64_t d = static_cast<int64_t>(prefix.size()); d < D_; ++d) prefix.push_back(rng_.below(arms_[d]));
      double s;
      problem.score(prefix.data(), 1, &s);
      return {s, prefix};
    }
    double best = -std::numeric_limits<double>::infinity();
    std::vector<int64_t> best_path, paths;
    std::vector<double> scores;
    while (static_cast<int64_t>(prefix.size()) < D_) {
      const int64_t d = static_cast<int64_t>(prefix.size()), K = arms_[d];
      if (level == 1) {  // the K playouts in one call of the problem
        paths.resize(K * D_);
        scores.resize(K);
        for (int64_t m = 0; m < K; ++m) {
          int64_t* p = paths.data() + m * D_;
          std::copy(prefix.begin(), prefix.end(), p);
          p[d] = m;
          for (int64_t e = d + 1; e < D_; ++e) p[e] = rng_.below(arms_[e]);
        }
        problem.score(paths.data(), K, scores.data());
        for (int64_t m = 0; m < K; ++m) {
          if (scores[m] > best) {
            best = scores[m];
            best_path.assign(paths.begin() + m * D_, paths.begin() + (m + 1) * D_);
          }
        }
      } else {
        for (int64_t m = 0; m < K; ++m) {
          prefix.push_back(m);
          auto [s, p] = nested(problem, level - 1, prefix);
          prefix.pop_back();
          if (s > best) {
            best = s;
            best_path = std::move(p);
          }
        }
      }
      prefix.push_back(best_path[d]);
    }
    return {best, best_path};
  }

  // visits, pending, total, parent, arm of every node in creation order (for parity tests).
  std::vector<std::vector<double>> arrays() const {
    auto as_doubles = [](const auto& v) { return std::vector<double>(v.begin(), v.end()); };
    return {as_doubles(visits_), as_doubles(pending_), total_, as_doubles(parent_), as_doubles(arm_)};
  }

 private:
  int64_t select(int64_t node, int64_t d) {
    const int64_t K = arms_[d], n = count_[node];
    const int32_t* tried = pool_arm_.data() + off_[node];
    if (n < K) {  // the r-th untried arm: step over the tried ones (ascending) at or below it
      int64_t a = rng_.below(K - n);
      for (int64_t j = 0; j < n && tried[j] <= a; ++j) ++a;
      return a;
    }
    // Every arm tried: the block holds all K children in arm order, so the strict > scan ties to the lowest arm.
    const double coef = alpha_ * std::sqrt(2.0 * std::log(static_cast<double>(visits_[node] + pending_[node])));
    const double* mean = pool_mean_.data() + off_[node];
    const double* isq = pool_isq_.data() + off_[node];
    double best = -std::numeric_limits<double>::infinity();
    int64_t arm = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double v = mean[j] + coef * isq[j];
      if (v > best) {
        best = v;
        arm = j;
      }
    }
    return arm;
  }

  int64_t new_node(int64_t parent, int64_t a) {
    visits_.push_back(0);
    pending_.push_back(0);
    total_.push_back(0.0);
    parent_.push_back(static_cast<int32_t>(parent));
    arm_.push_back(static_cast<int32_t>(a));
    off_.push_back(0);
    count_.push_back(0);
    cap_.push_back(0);
    return static_cast<int64_t>(visits_.size()) - 1;
  }

  // The pool entry of arm `a` among the children of `node` (at depth d), the child created if new.
  int64_t entry(int64_t node, int64_t a, int64_t d) {
    const int64_t off = off_[node], n = count_[node];
    const int32_t* arms = pool_arm_.data() + off;
    const int64_t pos = std::lower_bound(arms, arms + n, static_cast<int32_t>(a)) - arms;
    if (pos < n && arms[pos] == a) return off + pos;
    if (n == cap_[node]) grow(node, d);
    const int64_t child = new_node(node, a);
    const int64_t o = off_[node];
    const int64_t from = o + pos, to = o + n;  // shift the entries above pos up by one
    std::copy_backward(pool_arm_.begin() + from, pool_arm_.begin() + to, pool_arm_.begin() + to + 1);
    std::copy_backward(pool_node_.begin() + from, pool_node_.begin() + to, pool_node_.begin() + to + 1);
    std::copy_backward(pool_mean_.begin() + from, pool_mean_.begin() + to, pool_mean_.begin() + to + 1);
    std::copy_backward(pool_isq_.begin() + from, pool_isq_.begin() + to, pool_isq_.begin() + to + 1);
    pool_arm_[o + pos] = static_cast<int32_t>(a);
    pool_node_[o + pos] = static_cast<int32_t>(child);
    pool_mean_[o + pos] = 0.0;
    pool_isq_[o + pos] = 0.0;
    ++count_[node];
    return o + pos;
  }

  // A block twice as large (at most K_d) at the end of the pool; the old block is abandoned until reset().
  void grow(int64_t node, int64_t d) {
    const int64_t cap = std::min<int64_t>(std::max<int64_t>(1, 2 * cap_[node]), arms_[d]);
    const int64_t old = off_[node], n = count_[node], off = static_cast<int64_t>(pool_arm_.size());
    pool_arm_.resize(off + cap);
    pool_node_.resize(off + cap);
    pool_mean_.resize(off + cap);
    pool_isq_.resize(off + cap);
    std::copy_n(pool_arm_.begin() + old, n, pool_arm_.begin() + off);
    std::copy_n(pool_node_.begin() + old, n, pool_node_.begin() + off);
    std::copy_n(pool_mean_.begin() + old, n, pool_mean_.begin() + off);
    std::copy_n(pool_isq_.begin() + old, n, pool_isq_.begin() + off);
    off_[node] = static_cast<int32_t>(off);
    cap_[node] = static_cast<int32_t>(cap);
  }

  int64_t find(const std::vector<int64_t>& prefix) const {
    int64_t node = 0;
    for (int64_t a : prefix) {
      const int32_t* arms = pool_arm_.data() + off_[node];
      const int64_t n = count_[node];
      const int64_t pos = std::lower_bound(arms, arms + n, static_cast<int32_t>(a)) - arms;
      if (pos == n || arms[pos] != a) return -1;
      node = pool_node_[off_[node] + pos];
    }
    return node;
  }

  // The UCB terms of `node` at its pool entry e: mean total/n and 1/sqrt(n), n = visits + pending (≥ 1 here).
  void refresh(int64_t e, int64_t node) {
    const double n = static_cast<double>(visits_[node] + pending_[node]);
    pool_mean_[e] = total_[node] / n;
    pool_isq_[e] = 1.0 / std::sqrt(n);
  }

  void backup(int64_t node, double r) {
    ++visits_[node];
    total_[node] += r;
    if (pending_[node] > 0) --pending_[node];
  }

  std::vector<int64_t> arms_;
  int64_t D_;
  double alpha_, share_;
  SplitMix64 rng_;
  // nodes
  std::vector<int64_t> visits_, pending_;
  std::vector<double> total_;
  std::vector<int32_t> parent_, arm_, off_, count_, cap_;
  // children blocks: arm (ascending within a block), child node, the child's UCB terms
  std::vector<int32_t> pool_arm_, pool_node_;
  std::vector<double> pool_mean_, pool_isq_;
};

at::Tensor paths_tensor(const std::vector<int64_t>& paths, int64_t D) {
  const int64_t n = D ? static_cast<int64_t>(paths.size()) / D : 0;
  at::Tensor t = at::empty({n, D}, at::kLong);
  std::copy(paths.begin(), paths.end(), t.mutable_data_ptr<int64_t>());
  return t;
}

at::Tensor paths_checked(const at::Tensor& paths, int64_t D) {
  if (paths.dim() != 2 || paths.size(1) != D)
    throw py::value_error("paths must be an n × " + std::to_string(D) + " integer tensor");
  return paths.to(at::kCPU, at::kLong).contiguous();
}

void check_problem(const Tree& tree, const Problem& problem) {
  if (problem.arms() != tree.arms()) throw py::value_error("problem's arm_counts differ from the tree's");
}

}  // namespace

void register_nmcs(py::module_& parent) {
  py::module_ m = parent.def_submodule("nmcs", "The C++ NMCS/CMAB core (robustfast.nas wraps it).");
  py::class_<Problem, std::shared_ptr<Problem>>(m, "Problem")
      .def_property_readonly("arm_counts", &Problem::arms)
      .def("score", [](Problem& p, const at::Tensor& paths) {
        const at::Tensor t = paths_checked(paths, p.depth());
        std::vector<double> out(t.size(0));
        p.score(t.const_data_ptr<int64_t>(), t.size(0), out.data());
        return out;
      });
  m.def("separable", [](std::vector<int64_t> arms, std::vector<double> w, double sigma, uint64_t seed) {
    return std::shared_ptr<Problem>(new Separable(std::move(arms), std::move(w), sigma, seed));
  });
  m.def("prefix", [](std::vector<int64_t> arms, std::vector<int64_t> target, int64_t trap) {
    return std::shared_ptr<Problem>(new Prefix(std::move(arms), std::move(target), trap));
  });
  m.def("callback", [](std::vector<int64_t> arms, py::function fn) {
    return std::shared_ptr<Problem>(new Callback(std::move(arms), std::move(fn)));
  });
  py::class_<Tree>(m, "Tree")
      .def(py::init<std::vector<int64_t>, double, double, uint64_t>(), py::arg("arm_counts"), py::arg("alpha"),
           py::arg("share"), py::arg("seed"))
      .def("reset", &Tree::reset)
      .def("reseed", &Tree::reseed)
      .def("set_alpha", &Tree::set_alpha)
      .def("sample", [](Tree& t, std::vector<int64_t> prefix, int64_t n) {
        t.check_prefix(prefix, false, "prefix");
        std::vector<int64_t> out(n * t.depth());
        {
          py::gil_scoped_release nogil;
          t.sample(prefix, n, out.data());
        }
        return paths_tensor(out, t.depth());
      })
      .def("update", [](Tree& t, const at::Tensor& paths, const at::Tensor& rewards) {
        const at::Tensor p = paths_checked(paths, t.depth());
        const at::Tensor r = rewards.detach().to(at::kCPU, at::kDouble).contiguous();
        if (r.dim() != 1 || r.size(0) != p.size(0))
          throw py::value_error("rewards must have shape (" + std::to_string(p.size(0)) + ",)");
        t.check_paths(p.const_data_ptr<int64_t>(), r.const_data_ptr<double>(), p.size(0));
        py::gil_scoped_release nogil;
        t.update(p.const_data_ptr<int64_t>(), r.const_data_ptr<double>(), p.size(0));
      })
      .def("policy", &Tree::policy)
      .def("child_stats", &Tree::child_stats)
      .def("arrays", &Tree::arrays)
      .def("simulate", [](Tree& t, std::shared_ptr<Problem> p, std::vector<int64_t> prefix, int64_t L, int64_t batch) {
        check_problem(t, *p);
        t.check_prefix(prefix, false, "prefix");
        py::gil_scoped_release nogil;
        return t.simulate(*p, prefix, L, batch);
      })
      .def("search_best", [](Tree& t, std::shared_ptr<Problem> p, int64_t L, int64_t rank, bool from_root,
                             int64_t batch) {
        check_problem(t, *p);
        py::gil_scoped_release nogil;
        return t.search_best(*p, L, rank, from_root, batch);
      })
      .def("nested", [](Tree& t, std::shared_ptr<Problem> p, int64_t level, std::vector<int64_t> prefix) {
        check_problem(t, *p);
        t.check_prefix(prefix, false, "prefix");
        py::gil_scoped_release nogil;
        return t.nested(*p, level, prefix);
      });
}
