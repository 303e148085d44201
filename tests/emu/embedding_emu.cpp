// kernels/embedding.cu under the CPU emulator: the gathers, the sort-based coalesce,
// the atomic scatter-add and fill_at, each launched the way src/cuda/ops/embedding.rs launches it (grid and
// block sizes, the order of kernels), on random inputs against a plain CPU loop. Every
// buffer src/cuda/ops/embedding.rs allocates without zeroing is poisoned here first, so a kernel that leaves
// an element unwritten fails. Run by tests/kernel_emulation.rs; exits 1 on any failure.
#include "check.h"
#include "../../kernels/embedding.cu"

#include <cstdio>
#include <map>
#include <random>
#include <string>

static const float kNaN = std::nanf("");
static const u32 kPoison32 = 0xabababab;
static const u64 kPoison64 = 0xabababababababab;

struct Rng {
    std::mt19937_64 g;
    explicit Rng(u64 seed) : g(seed) {}
    long long below(long long n) { return (long long)(g() % (u64)n); }
    float uniform(float lo, float hi) { return lo + (hi - lo) * (float)((g() >> 40) * (1.0 / 16777216.0)); }
};

// Zipf(s) over [0, rows) by inverse CDF, ranks scattered over the table.
static std::vector<long long> zipf(Rng& rng, long long rows, long long n, double s) {
    std::vector<double> cdf(rows);
    double acc = 0;
    for (long long r = 0; r < rows; ++r) cdf[r] = acc += 1.0 / std::pow((double)(r + 1), s);
    std::vector<long long> out(n);
    for (auto& v : out) {
        double u = (double)(rng.g() >> 11) / 9007199254740992.0 * acc;
        long long rank = std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin();
        v = (std::min(rank, rows - 1) * 2654435761ll) % rows;
    }
    return out;
}

// Per row id, per column: (sum, sum of |x|) in double.
using Reference = std::map<long long, std::vector<std::pair<double, double>>>;
static Reference reference(const std::vector<long long>& idx, const std::vector<float>& g, long long dim) {
    Reference ref;
    for (size_t i = 0; i < idx.size(); ++i) {
        auto& e = ref[idx[i]];
        if (e.empty()) e.assign(dim, {0.0, 0.0});
        for (long long c = 0; c < dim; ++c) {
            double v = g[i * dim + c];
            e[c].first += v;
            e[c].second += std::fabs(v);
        }
    }
    return ref;
}

struct RowSparseOut {
    std::vector<i64> unique;
    std::vector<float> summed;
    i64 count = -7;
    i64 err[2] = {0, 0};
};

// Checks the RowSparse layout against the reference; `sorted` for coalesce.
static void check_row_sparse(const std::string& what, const RowSparseOut& o, const Reference& ref, long long n,
                             long long dim, bool sorted) {
    const long long k = (long long)ref.size();
    CHECK(o.count == k, "%s: count %lld, want %lld", what.c_str(), (long long)o.count, k);
    if (o.count != k) return;
    std::map<long long, long long> slot_of;
    for (long long s = 0; s < k; ++s) {
        CHECK(slot_of.emplace(o.unique[s], s).second, "%s: row %lld listed twice", what.c_str(), (long long)o.unique[s]);
    }
    long long s_sorted = 0;
    for (const auto& [id, sums] : ref) {
        auto it = slot_of.find(id);
        CHECK(it != slot_of.end(), "%s: row %lld missing", what.c_str(), id);
        if (it == slot_of.end()) continue;
        if (sorted) CHECK(it->second == s_sorted, "%s: row %lld at slot %lld, want %lld", what.c_str(), id, it->second, s_sorted);
        ++s_sorted;
        for (long long c = 0; c < dim; ++c) {
            float got = o.summed[it->second * dim + c];
            double want = sums[c].first;
            double tol = 1e-5 + 2e-6 * sums[c].second;
            CHECK(std::fabs(got - want) <= tol, "%s: row %lld col %lld: got %g want %g", what.c_str(), id, c, got, want);
        }
    }
    for (long long s = k; s < n; ++s) CHECK(o.unique[s] == -1, "%s: unique[%lld] = %lld, want -1", what.c_str(), s, (long long)o.unique[s]);
    for (long long t = k * dim; t < n * dim; ++t) CHECK(o.summed[t] == 0.0f, "%s: summed tail [%lld] = %g", what.c_str(), t, o.summed[t]);
}

// ---------------------------------------------------------------- ops::scatter_add, ScatterMode::Atomic

// ops::scatter_add_async (Atomic): only count is zeroed; the map persists between calls.
// `max_blocks` caps the grid below src/cuda/ops/embedding.rs's so the kernels' grid-stride loops repeat.
static RowSparseOut scatter_atomic(const std::vector<i64>& idx, const std::vector<float>& g, long long dim,
                                   long long rows, std::vector<u32>& map, unsigned max_blocks = 1u << 20) {
    const long long n = (long long)idx.size();
    RowSparseOut o;
    o.unique.assign(n, (i64)kPoison64);
    o.summed.assign(n * dim, kNaN);
    o.count = 0;
    if (n == 0) return o;
    std::vector<u32> claimer(n, kPoison32);
    const bool vec4 = dim % 4 == 0;
    const long long width = vec4 ? dim / 4 : dim;
    dim3 per_index = blocks_for(n);
    per_index.x = std::min(per_index.x, max_blocks);
    launch(per_index, kThreads, [&] {
        if (vec4)
            scatter_claim_store_vec4(n, rows, dim, idx.data(), map.data(), claimer.data(), &o.count, o.unique.data(), g.data(),
                                     o.summed.data(), o.err);
        else
            scatter_claim_store_scalar(n, rows, dim, idx.data(), map.data(), claimer.data(), &o.count, o.unique.data(),
                                       g.data(), o.summed.data(), o.err);
    });
    dim3 grid = per_index;
    grid.y = (unsigned)std::clamp((width + 3) / 4, 1ll, 65535ll);
    launch(grid, kThreads, [&] {
        if (vec4) scatter_add_losers_vec4(n, rows, dim, idx.data(), map.data(), claimer.data(), g.data(), o.summed.data());
        else scatter_add_losers_scalar(n, rows, dim, idx.data(), map.data(), claimer.data(), g.data(), o.summed.data());
    });
    dim3 per_slot = blocks_for(n * width);
    per_slot.x = std::min(per_slot.x, max_blocks);
    launch(per_slot, kThreads, [&] {
        if (vec4) scatter_finish_vec4(n, dim, &o.count, o.unique.data(), map.data(), o.summed.data());
        else scatter_finish_scalar(n, dim, &o.count, o.unique.data(), map.data(), o.summed.data());
    });
    return o;
}

// ---------------------------------------------------------------- ops::scatter_add, ScatterMode::Sorted ("coalesce")

static void exclusive_scan(const std::vector<u32>& in, std::vector<u32>& out, u32* total) {
    const long long n = (long long)in.size();
    const long long nb = std::max(1ll, (n + SCAN_BLOCK - 1) / SCAN_BLOCK);
    std::vector<u32> sums(nb, kPoison32);
    const dim3 block{SCAN_BLOCK, 1, 1};
    launch(dim3{(unsigned)nb, 1, 1}, block, [&] { scan_block_sums(in.data(), n, sums.data()); });
    launch(dim3{1, 1, 1}, block, [&] { scan_block_offsets(sums.data(), nb, total); });
    launch(dim3{(unsigned)nb, 1, 1}, block, [&] { scan_apply(in.data(), n, sums.data(), out.data()); });
}

// The multi-kernel pipeline (src/cuda/ops/embedding.rs for n > SORT_TILE or large gradients).
static RowSparseOut coalesce_multi(const std::vector<i64>& idx, const std::vector<float>& rows_in, long long dim,
                                   long long rows) {
    const long long n = (long long)idx.size();
    RowSparseOut o;
    o.unique.assign(n, (i64)kPoison64);
    o.summed.assign(n * dim, kNaN);
    o.count = (i64)kPoison64;
    long long padded = SORT_TILE;
    while (padded < n) padded *= 2;
    std::vector<u64> keys(padded, kPoison64);
    launch(blocks_for(padded), kThreads, [&] { coalesce_build_keys(n, padded, rows, idx.data(), keys.data(), o.err); });
    const dim3 tiles{(unsigned)(padded / SORT_TILE), 1, 1}, tile_block{SORT_TILE / 2, 1, 1};
    launch(tiles, tile_block, [&] { sort_tiles(keys.data()); });
    std::vector<u64> other(padded, kPoison64);
    for (long long run = SORT_TILE; run < padded; run *= 2) {
        launch(blocks_for(padded / MERGE_ITEMS), kThreads, [&] { merge_runs(keys.data(), other.data(), padded, run); });
        std::swap(keys, other);
    }
    {
        std::vector<u64> want = keys;
        std::sort(want.begin(), want.end());
        CHECK(keys == want, "coalesce n=%lld: keys not sorted after the merge passes", n);
    }
    std::vector<u32> flags(n, kPoison32), seg_id(n, kPoison32), seg_start(n + 1, kPoison32);
    u32 num_segments = kPoison32;
    launch(blocks_for(n), kThreads, [&] { coalesce_head_flags(n, keys.data(), flags.data()); });
    exclusive_scan(flags, seg_id, &num_segments);
    launch(blocks_for(n), kThreads, [&] {
        coalesce_segments(n, keys.data(), flags.data(), seg_id.data(), &num_segments, o.unique.data(), seg_start.data(), &o.count);
    });
    std::vector<u32> counts(n, kPoison32), chunk_off(n, kPoison32);
    u32 num_chunks = kPoison32;
    launch(blocks_for(n), kThreads, [&] { coalesce_chunk_counts(n, &num_segments, seg_start.data(), counts.data()); });
    exclusive_scan(counts, chunk_off, &num_chunks);
    const long long cap = n + n / 32 + 1;
    std::vector<u32> chunk_seg(cap, kPoison32);
    launch(blocks_for(cap), kThreads, [&] { coalesce_chunk_map(cap, &num_segments, &num_chunks, chunk_off.data(), chunk_seg.data()); });
    std::vector<float> partial(cap * dim, kNaN);
    const bool vec4 = dim % 4 == 0;
    launch(blocks_for(vec4 ? cap * dim / 4 : cap * dim), kThreads, [&] {
        if (vec4)
            coalesce_chunk_sum_vec4(cap, dim, keys.data(), rows_in.data(), seg_start.data(), counts.data(), chunk_off.data(),
                                    chunk_seg.data(), &num_chunks, o.summed.data(), partial.data());
        else
            coalesce_chunk_sum_scalar(cap, dim, keys.data(), rows_in.data(), seg_start.data(), counts.data(), chunk_off.data(),
                                      chunk_seg.data(), &num_chunks, o.summed.data(), partial.data());
    });
    launch(blocks_for(n * dim), kThreads, [&] {
        coalesce_seg_finish(n, dim, &num_segments, counts.data(), chunk_off.data(), partial.data(), o.summed.data());
    });
    return o;
}

// The one-block kernel (src/cuda/ops/embedding.rs for n <= SORT_TILE and n * dim <= 2^19).
static RowSparseOut coalesce_one(const std::vector<i64>& idx, const std::vector<float>& rows_in, long long dim,
                                 long long rows) {
    const long long n = (long long)idx.size();
    RowSparseOut o;
    o.unique.assign(n, (i64)kPoison64);
    o.summed.assign(n * dim, kNaN);
    o.count = (i64)kPoison64;
    std::vector<float> partial((n + n / 32 + 1) * dim, kNaN);
    launch(dim3{1, 1, 1}, dim3{SORT_TILE / 2, 1, 1}, [&] {
        if (dim % 4 == 0)
            coalesce_one_block_vec4(n, dim, rows, idx.data(), rows_in.data(), o.unique.data(), o.summed.data(), &o.count,
                                    partial.data(), o.err);
        else
            coalesce_one_block_scalar(n, dim, rows, idx.data(), rows_in.data(), o.unique.data(), o.summed.data(), &o.count,
                                      partial.data(), o.err);
    });
    return o;
}

// What ops::scatter_add(ScatterMode::Sorted) runs for these sizes.
static RowSparseOut coalesce(const std::vector<i64>& idx, const std::vector<float>& rows_in, long long dim, long long rows) {
    const long long n = (long long)idx.size();
    return n <= SORT_TILE && n * dim <= (1 << 19) ? coalesce_one(idx, rows_in, dim, rows)
                                                 : coalesce_multi(idx, rows_in, dim, rows);
}

// The one-block kernel must give the multi-kernel pipeline's results bit for bit.
static void check_one_block_is_bitwise_multi(const std::string& what, const std::vector<i64>& idx,
                                             const std::vector<float>& g, long long dim, long long rows) {
    RowSparseOut a = coalesce_one(idx, g, dim, rows), b = coalesce_multi(idx, g, dim, rows);
    CHECK(a.count == b.count && a.unique == b.unique, "%s: one-block unique rows differ", what.c_str());
    CHECK(a.err[0] == b.err[0] && a.err[1] == b.err[1], "%s: one-block error cell differs", what.c_str());
    CHECK(std::memcmp(a.summed.data(), b.summed.data(), a.summed.size() * sizeof(float)) == 0,
          "%s: one-block sums differ in some bit", what.c_str());
}

// ---------------------------------------------------------------- gather

static void check_gather(Rng& rng, long long rows, long long dim, long long n) {
    std::vector<float> table(rows * dim);
    for (auto& v : table) v = rng.uniform(-1, 1);
    std::vector<i64> idx(n);
    for (auto& v : idx) v = rng.below(rows);
    idx[n / 2] = rows;  // one bad index: reported, its row written as zeros
    std::vector<float> out(n * dim, kNaN);
    i64 err[2] = {0, 0};
    const bool vec4 = dim % 4 == 0;
    // ops::gather_async: the vectorised kernel takes GATHER_ILP 16-byte pieces per thread.
    launch(blocks_for(vec4 ? (n * dim / 4 + GATHER_ILP - 1) / GATHER_ILP : n * dim), kThreads, [&] {
        if (vec4) gather_f32_vec4(n, rows, dim, idx.data(), table.data(), out.data(), err);
        else gather_f32_scalar(n, rows, dim, idx.data(), table.data(), out.data(), err);
    });
    CHECK(err[0] == 1 && err[1] == rows, "gather D=%lld: bad index report (%lld, %lld)", dim, (long long)err[0], (long long)err[1]);
    for (long long i = 0; i < n; ++i)
        for (long long c = 0; c < dim; ++c) {
            float want = i == n / 2 ? 0.0f : table[idx[i] * dim + c];
            CHECK(out[i * dim + c] == want, "gather D=%lld: out[%lld][%lld] = %g, want %g", dim, i, c, out[i * dim + c], want);
        }
}

// fill_at: every listed position (duplicates included) takes the value, every other
// element keeps the input's; a position out of range is reported and skipped.
static void check_fill_at(Rng& rng, long long len, long long n) {
    std::vector<float> x(len), y;
    for (auto& v : x) v = rng.uniform(-1, 1);
    std::vector<i64> pos(n);
    for (auto& p : pos) p = rng.below(len);
    for (bool bad : {false, true}) {
        if (bad) pos[n / 2] = len + 5;
        std::vector<bool> hit(len, false);
        for (i64 p : pos)
            if (p < len) hit[p] = true;
        y = x;  // the launcher copies the input first
        i64 err[2] = {0, 0};
        launch(blocks_for(n), kThreads, [&] { fill_at_f32(n, len, pos.data(), -INFINITY, y.data(), err); });
        CHECK(err[0] == (bad ? 1 : 0) && (!bad || err[1] == len + 5), "fill_at len=%lld n=%lld bad=%d: err %lld %lld", len, n,
              (int)bad, (long long)err[0], (long long)err[1]);
        for (long long i = 0; i < len; ++i)
            CHECK(hit[i] ? y[i] == -INFINITY : y[i] == x[i], "fill_at len=%lld n=%lld bad=%d [%lld]: got %g", len, n, (int)bad, i, y[i]);
    }
}

int main() {
    Rng rng(2026);
    for (auto [len, n] : {std::pair{1ll, 1ll}, {1000ll, 37ll}, {50000ll, 20000ll}, {300ll, 5000ll}}) check_fill_at(rng, len, n);
    for (long long dim : {64ll, 6ll, 4ll, 3ll}) check_gather(rng, 500, dim, 1500);

    const long long rows = 3000;
    std::vector<u32> map(rows, 0);  // the device's persistent scatter map (all zero between calls)
    struct Case {
        long long dim, n;
    };
    for (Case cs : {Case{64, 2500}, Case{6, 700}, Case{8, 5000}, Case{3, 1}, Case{4, 2049}, Case{64, 2048},
                    Case{12, 1024}, Case{5, 33}, Case{4, 20000}}) {
        std::vector<i64> uniform(cs.n), hot(cs.n, 42);
        for (auto& v : uniform) v = rng.below(rows);
        std::vector<i64> skewed = zipf(rng, rows, cs.n, 1.2);
        for (auto* idx : {&uniform, &skewed, &hot}) {
            std::vector<float> g(cs.n * cs.dim);
            for (auto& v : g) v = rng.uniform(-1, 1);
            Reference ref = reference(*idx, g, cs.dim);
            std::string what = "D=" + std::to_string(cs.dim) + " n=" + std::to_string(cs.n) +
                               (idx == &hot ? " one row" : idx == &skewed ? " zipf" : " uniform");
            RowSparseOut a = scatter_atomic(*idx, g, cs.dim, rows, map);
            check_row_sparse("atomic " + what, a, ref, cs.n, cs.dim, false);
            RowSparseOut few = scatter_atomic(*idx, g, cs.dim, rows, map, 3);  // each block loops
            check_row_sparse("atomic, 3 blocks, " + what, few, ref, cs.n, cs.dim, false);
            CHECK(a.err[0] == 0, "atomic %s: spurious bad index", what.c_str());
            CHECK(std::all_of(map.begin(), map.end(), [](u32 v) { return v == 0; }), "atomic %s: map not cleared", what.c_str());
            RowSparseOut c = coalesce(*idx, g, cs.dim, rows);
            check_row_sparse("coalesce " + what, c, ref, cs.n, cs.dim, true);
            CHECK(c.err[0] == 0, "coalesce %s: spurious bad index", what.c_str());
            if (cs.n <= SORT_TILE) check_one_block_is_bitwise_multi(what, *idx, g, cs.dim, rows);
        }
    }
    // Out-of-range indices: reported (first bad value wins the cell), skipped, map clean.
    for (i64 bad : {rows, (i64)-1, (i64)1 << 40}) {
        std::vector<i64> idx(600);
        for (auto& v : idx) v = rng.below(rows);
        idx[300] = bad;
        std::vector<float> g(idx.size() * 8);
        for (auto& v : g) v = rng.uniform(-1, 1);
        RowSparseOut a = scatter_atomic(idx, g, 8, rows, map);
        CHECK(a.err[0] == 1 && a.err[1] == bad, "atomic: bad index %lld reported as (%lld, %lld)", (long long)bad,
              (long long)a.err[0], (long long)a.err[1]);
        CHECK(std::all_of(map.begin(), map.end(), [](u32 v) { return v == 0; }), "atomic: map not cleared after bad index");
        check_one_block_is_bitwise_multi("a bad index", idx, g, 8, rows);
        RowSparseOut c = coalesce(idx, g, 8, rows);
        CHECK(c.err[0] == 1 && c.err[1] == bad, "coalesce: bad index %lld reported as (%lld, %lld)", (long long)bad,
              (long long)c.err[0], (long long)c.err[1]);
        std::vector<i64> good;
        std::vector<float> good_g;
        for (size_t i = 0; i < idx.size(); ++i)
            if (idx[i] != bad) {
                good.push_back(idx[i]);
                good_g.insert(good_g.end(), g.begin() + i * 8, g.begin() + (i + 1) * 8);
            }
        // The bad row is skipped: the rest is summed as without it (n keeps the bad slot).
        Reference ref = reference(good, good_g, 8);
        check_row_sparse("atomic with a bad index", a, ref, (long long)idx.size(), 8, false);
        check_row_sparse("coalesce with a bad index", c, ref, (long long)idx.size(), 8, true);
    }
    return report("embedding.cu");
}
