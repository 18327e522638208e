# cmake -DIN=file -DOUT=file.cpp -P EmbedBytes.cmake
# Writes rudder::proto_descriptor_set(): the bytes of IN as a std::string_view.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," body "${hex}")
file(WRITE ${OUT}.tmp
"// Generated from rudder.desc; do not edit.\n#include <string_view>\nnamespace rudder {\nnamespace {\nconst char kBytes[] = {${body} 0};\n}\nstd::string_view proto_descriptor_set() { return {kBytes, sizeof(kBytes) - 1}; }\n}  // namespace rudder\n")
file(RENAME ${OUT}.tmp ${OUT})
