# cmake -DIN=FILE -DOUT=FILE.cpp -DNAME=kName -P EmbedFile.cmake: writes a C++ source defining
# `const std::string_view siamese::serve::NAME` that holds the bytes of IN.
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
file(WRITE "${OUT}" "// Generated from ${IN} by cmake/EmbedFile.cmake: edit that file instead.\n#include <string_view>\n\n"
  "namespace siamese::serve {\n\nnamespace {\nconst char bytes[] = {${bytes} 0};\n}  // namespace\n\n"
  "extern const std::string_view ${NAME};\nconst std::string_view ${NAME}(bytes, sizeof bytes - 1);\n\n}  // namespace siamese::serve\n")
