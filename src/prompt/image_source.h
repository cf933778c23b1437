// Image references in a request -> encoded image bytes. ref: spec/inputs.md §6
//   data:<mime>;base64,<payload>  -> base64-decoded bytes (strict RFC 4648 alphabet and padding)
//   file://<path>, or a plain path -> the file's bytes (only with allow_local_files)
//   http://, https://            -> an Unimplemented error: remote fetches are not enabled
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pixtral/status.h"
#include "prompt/chat_request.h"

namespace pixtral::prompt {

// Standard base64 with padding; whitespace is not accepted. nullopt-like error on bad input.
Result<std::vector<uint8_t>> decode_base64(std::string_view text);

// Parses an image URL of a content part; `where` names the request part for errors.
Result<ImageSource> parse_image_url(std::string_view url, const std::string& where,
                                    const ParseOptions& options);

// The encoded bytes of an image source (reads files). `where` names the request part.
Result<std::vector<uint8_t>> read_image_bytes(const ImageSource& source, const std::string& where);

}  // namespace pixtral::prompt
