// Inverted lists of fine codes, one list per cell, ids ascending in a list;
// shared by the LOPQ indexes (multi-index cells (c0, c1), single-index cells).
//
// Built in passes over the codes, which may come in chunks so that a caller can
// drop each chunk's pages once read: begin(counts) sizes every list, fill()
// appends one code (ids in increasing order), end() checks that every list was
// filled exactly. A fill that does not match the counts never writes outside its
// list; end() then empties the lists and reports it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace benchpq {

class InvertedLists {
 public:
  /// ncells empty lists of fine codes of M sub-codes, uint8 (wide: uint16).
  void begin(const int64_t* counts, int64_t ncells, int64_t M, bool wide, bool* ok) {
    std::vector<int64_t> offsets(ncells + 1, 0);
    *ok = true;
    for (int64_t c = 0; c < ncells; ++c) {
      if (counts[c] < 0) *ok = false;
      offsets[c + 1] = offsets[c] + (counts[c] < 0 ? 0 : counts[c]);
    }
    const int64_t n = offsets[ncells];
    M_ = M;
    std::vector<int64_t>(offsets.begin(), offsets.end() - 1).swap(fill_);
    std::vector<int64_t>(n).swap(ids_);
    std::vector<uint8_t>(wide ? 0 : n * M).swap(codes8_);
    std::vector<uint16_t>(wide ? n * M : 0).swap(codes16_);
    offsets_.swap(offsets);
    broken_ = !*ok;
  }

  /// Append the M fine sub-codes of vector id to the list of cell.
  template <typename CodeT>
  void fill(int64_t cell, int64_t id, const CodeT* fine) {
    if (cell < 0 || cell + 1 >= static_cast<int64_t>(offsets_.size()) ||
        static_cast<int64_t>(fill_.size()) + 1 != static_cast<int64_t>(offsets_.size()) ||
        fill_[cell] >= offsets_[cell + 1]) {
      broken_ = true;
      return;
    }
    const int64_t pos = fill_[cell]++;
    ids_[pos] = id;
    for (int64_t j = 0; j < M_; ++j) {
      if (codes16_.empty())
        codes8_[pos * M_ + j] = static_cast<uint8_t>(fine[j]);
      else
        codes16_[pos * M_ + j] = static_cast<uint16_t>(fine[j]);
    }
  }

  /// True when every list was filled exactly; otherwise the lists are emptied.
  bool end() {
    bool full = !broken_ && fill_.size() + 1 == offsets_.size();
    for (std::size_t c = 0; full && c < fill_.size(); ++c) full = fill_[c] == offsets_[c + 1];
    const int64_t ncells = offsets_.empty() ? 0 : static_cast<int64_t>(offsets_.size()) - 1;
    std::vector<int64_t>().swap(fill_);
    broken_ = false;
    if (!full) {
      std::vector<int64_t>(ncells + 1, 0).swap(offsets_);
      std::vector<int64_t>().swap(ids_);
      std::vector<uint8_t>().swap(codes8_);
      std::vector<uint16_t>().swap(codes16_);
    }
    return full;
  }

  /// Empty lists over ncells cells.
  void reset(int64_t ncells) {
    std::vector<int64_t>(ncells + 1, 0).swap(offsets_);
    std::vector<int64_t>().swap(fill_);
    std::vector<int64_t>().swap(ids_);
    std::vector<uint8_t>().swap(codes8_);
    std::vector<uint16_t>().swap(codes16_);
    broken_ = false;
  }

  int64_t size() const { return offsets_.empty() ? 0 : offsets_.back(); }
  int64_t begin_of(int64_t cell) const { return offsets_[cell]; }
  int64_t end_of(int64_t cell) const { return offsets_[cell + 1]; }
  int64_t id(int64_t pos) const { return ids_[pos]; }
  const std::vector<int64_t>& offsets() const { return offsets_; }
  const uint8_t* codes8() const { return codes8_.data(); }
  const uint16_t* codes16() const { return codes16_.data(); }

 private:
  int64_t M_ = 0;
  bool broken_ = false;
  std::vector<int64_t> offsets_{0};  // (ncells + 1): list c is [offsets[c], offsets[c + 1])
  std::vector<int64_t> fill_;        // (ncells): next free slot of each list while building
  std::vector<int64_t> ids_;
  std::vector<uint8_t> codes8_;
  std::vector<uint16_t> codes16_;
};

}  // namespace benchpq
