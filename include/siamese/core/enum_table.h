#pragma once
/// \file enum_table.h  Closed sets (distances, losses, schedules, ...) are enums, each named by one
/// table; parsing and printing go through these two functions instead of a hand-written switch
/// per enum. A table lists every value once, in the order error messages offer them:
///
///   constexpr EnumNames<Schedule, 4> kScheduleNames{{{Schedule::None, "none"}, {Schedule::Step, "step"},
///                                                   {Schedule::Cosine, "cosine"}, {Schedule::Plateau, "plateau"}}};
///   parse_enum(kScheduleNames, "cosine", "schedule") == Schedule::Cosine
///   enum_name(kScheduleNames, Schedule::Step) == "step"

#include <array>
#include <cstddef>
#include <string>
#include <utility>

#include "siamese/core/error.h"

namespace siamese {

template <typename E, std::size_t N>
using EnumNames = std::array<std::pair<E, const char*>, N>;

/// "a, b or c": the names of a table, for messages.
template <typename E, std::size_t N>
std::string enum_choices(const EnumNames<E, N>& table) {
  std::string s;
  for (std::size_t i = 0; i < N; ++i) s += (i == 0 ? "" : i + 1 == N ? " or " : ", ") + std::string(table[i].second);
  return s;
}

/// The value called `name`. Throws Error(InvalidArgument) "unknown WHAT 'NAME' (expected a, b or c)".
template <typename E, std::size_t N>
E parse_enum(const EnumNames<E, N>& table, const std::string& name, const std::string& what) {
  for (const auto& [value, value_name] : table) {
    if (name == value_name) return value;
  }
  throw Error(ErrorCode::InvalidArgument, "unknown " + what + " '" + name + "' (expected " + enum_choices(table) + ")");
}

/// The name of `value`; throws Error(Internal) for a value missing from the table.
template <typename E, std::size_t N>
std::string enum_name(const EnumNames<E, N>& table, E value) {
  for (const auto& [v, value_name] : table) {
    if (v == value) return value_name;
  }
  throw Error(ErrorCode::Internal, "enum value " + std::to_string(static_cast<long long>(value)) + " has no name");
}

}  // namespace siamese
