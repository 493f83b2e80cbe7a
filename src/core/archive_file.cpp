#include "siamese/core/archive_file.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "siamese/core/atomic_file.h"
#include "siamese/core/checksum.h"
#include "siamese/core/error.h"

namespace siamese {

namespace {

uint64_t hash_string(const std::string& s, uint64_t h) {
  const uint64_t size = s.size();
  h = fnv1a(&size, sizeof size, h);
  return fnv1a(s.data(), s.size(), h);
}

template <typename T>
uint64_t hash_value(T value, uint64_t h) {
  return fnv1a(&value, sizeof value, h);
}

uint64_t hash_ivalue(const c10::IValue& v, uint64_t h) {
  h = hash_string(v.tagKind(), h);
  if (v.isTensor()) {
    const auto& t = v.toTensor();
    if (!t.defined()) return hash_string("undefined", h);
    h = hash_string(std::string(c10::toString(t.scalar_type())), h);
    for (auto size : t.sizes()) h = hash_value<int64_t>(size, h);
    auto c = t.detach().to(torch::kCPU).contiguous();
    return fnv1a(c.data_ptr(), c.nbytes(), h);
  }
  if (v.isString()) return hash_string(v.toStringRef(), h);
  if (v.isInt()) return hash_value<int64_t>(v.toInt(), h);
  if (v.isDouble()) return hash_value<double>(v.toDouble(), h);
  if (v.isBool()) return hash_value<uint8_t>(v.toBool() ? 1 : 0, h);
  if (v.isObject()) {  // a nested archive (module), or a class object: its attributes in order
    const auto object = v.toObject();
    const auto type = object->type();
    for (size_t i = 0; i < object->slots().size(); ++i) {
      h = hash_string(type->getAttributeName(i), h);
      h = hash_ivalue(object->getSlot(i), h);
    }
    return h;
  }
  if (v.isList()) {
    for (const auto& e : v.toListRef()) h = hash_ivalue(e, h);
    return h;
  }
  if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) h = hash_ivalue(e, h);
    return h;
  }
  if (v.isGenericDict()) {
    for (const auto& entry : v.toGenericDict()) h = hash_ivalue(entry.value(), hash_ivalue(entry.key(), h));
    return h;
  }
  return h;  // None and kinds archives do not hold: their kind alone
}

std::string serialize(torch::serialize::OutputArchive& archive) {
  std::ostringstream out;
  archive.save_to(out);
  return std::move(out).str();
}

}  // namespace

std::string archive_checksum(torch::serialize::InputArchive& archive) {
  auto keys = archive.keys();
  std::sort(keys.begin(), keys.end());
  uint64_t h = kFnv1aOffset;
  for (const auto& key : keys) {
    if (key == kArchiveChecksumKey) continue;
    c10::IValue v;
    archive.read(key, v);
    h = hash_ivalue(v, hash_string(key, h));
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

void save_archive(torch::serialize::OutputArchive& archive, const std::string& path) {
  // In memory first: LibTorch's file writer throws from its destructor when the disk fills, which
  // ends the process; the bytes are then written by write_file_atomically, every write checked.
  std::string bytes;
  try {
    bytes = serialize(archive);
    torch::serialize::InputArchive saved;
    saved.load_from(bytes.data(), bytes.size());
    archive.write(kArchiveChecksumKey, c10::IValue(archive_checksum(saved)));
    bytes = serialize(archive);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::Internal, path, std::string("cannot serialise (") + e.what_without_backtrace() + ")");
  }
  write_file_atomically(path, bytes);
}

bool load_archive(torch::serialize::InputArchive& archive, const std::string& path, const std::string& what) {
  c10::IValue stored;
  std::string actual;
  try {
    archive.load_from(path);
    if (!archive.try_read(kArchiveChecksumKey, stored)) return false;  // written before checksums: accepted
    actual = archive_checksum(archive);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::Corruption, path,
                "corrupt or unreadable " + what + " (" + e.what_without_backtrace() + ")");
  }
  if (!stored.isString() || stored.toStringRef() != actual) {
    throw Error(ErrorCode::Corruption, path, "corrupt " + what + " (checksum mismatch)");
  }
  return true;
}

}  // namespace siamese
