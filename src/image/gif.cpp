// GIF through giflib, first frame only, laid out the way Pillow's GifImagePlugin does: a canvas
// of the logical screen size filled with the frame's transparent index (or index 0), the frame's
// indices pasted at its offset, the local (else global) palette, and the graphic-control
// transparent index as alpha 0 before pasting onto white. ref: spec/inputs.md §5.1
#include <gif_lib.h>

#include <cstring>
#include <string>

#include "image/codec.h"

namespace pixtral::image::detail {
namespace {

struct MemReader {
  std::span<const uint8_t> bytes;
  size_t pos = 0;
};

int read_fn(GifFileType* gif, GifByteType* out, int n) {
  auto* r = static_cast<MemReader*>(gif->UserData);
  const size_t take = std::min(static_cast<size_t>(n), r->bytes.size() - r->pos);
  std::memcpy(out, r->bytes.data() + r->pos, take);
  r->pos += take;
  return static_cast<int>(take);
}

struct GifCloser {
  GifFileType* gif;
  ~GifCloser() {
    int error = 0;
    if (gif) DGifCloseFile(gif, &error);
  }
};

// Reads records up to the first image; returns its transparent index (-1: none) via `transparent`.
Status seek_first_image(GifFileType* gif, int& transparent) {
  for (;;) {
    GifRecordType type;
    if (DGifGetRecordType(gif, &type) == GIF_ERROR) return invalid_argument("gif: corrupt or truncated file");
    if (type == IMAGE_DESC_RECORD_TYPE) return Status::ok();
    if (type == TERMINATE_RECORD_TYPE) return invalid_argument("gif: file has no image");
    if (type != EXTENSION_RECORD_TYPE) continue;
    int code = 0;
    GifByteType* block = nullptr;
    if (DGifGetExtension(gif, &code, &block) == GIF_ERROR) return invalid_argument("gif: corrupt extension block");
    if (code == GRAPHICS_EXT_FUNC_CODE && block && block[0] >= 4) transparent = (block[1] & 1) ? block[4] : -1;
    while (block) {
      if (DGifGetExtensionNext(gif, &block) == GIF_ERROR) return invalid_argument("gif: corrupt extension block");
    }
  }
}

// Frame indices in display order (giflib returns interlaced rows in file order).
Status read_frame(GifFileType* gif, std::vector<uint8_t>& indices) {
  const GifImageDesc& d = gif->Image;
  indices.assign(static_cast<size_t>(d.Width) * d.Height, 0);
  std::vector<int> order;  // file row -> display row
  if (d.Interlace) {
    const int starts[4] = {0, 4, 2, 1}, steps[4] = {8, 8, 4, 2};
    for (int p = 0; p < 4; ++p) for (int y = starts[p]; y < d.Height; y += steps[p]) order.push_back(y);
  } else {
    for (int y = 0; y < d.Height; ++y) order.push_back(y);
  }
  for (int y : order) {
    if (DGifGetLine(gif, indices.data() + static_cast<size_t>(y) * d.Width, d.Width) == GIF_ERROR) {
      return invalid_argument("gif: corrupt or truncated image data");
    }
  }
  return Status::ok();
}

}  // namespace

Result<ImageInfo> probe_gif(std::span<const uint8_t> b) {
  if (b.size() < 10) return invalid_argument("gif: truncated header");
  return ImageInfo{"gif", read_le16(&b[6]), read_le16(&b[8])};
}

Result<RgbImage> decode_gif(std::span<const uint8_t> bytes, const DecodeLimits& limits) {
  PX_ASSIGN_OR_RETURN(ImageInfo header, probe_gif(bytes));
  PX_RETURN_IF_ERROR(check_dimensions(header.width, header.height, limits, "gif"));
  MemReader reader{bytes, 0};
  int error = 0;
  GifCloser closer{DGifOpen(&reader, read_fn, &error)};
  GifFileType* gif = closer.gif;
  if (!gif) return invalid_argument(std::string("gif: cannot open: ") + GifErrorString(error));
  int transparent = -1;
  PX_RETURN_IF_ERROR(seek_first_image(gif, transparent));
  if (DGifGetImageDesc(gif) == GIF_ERROR) return invalid_argument("gif: corrupt image descriptor");
  const GifImageDesc& d = gif->Image;
  if (d.Left + d.Width > header.width || d.Top + d.Height > header.height || d.Width <= 0 || d.Height <= 0) {
    return unimplemented("gif: first frame lies outside the logical screen");
  }
  std::vector<uint8_t> frame;  // [d.Height, d.Width] palette indices
  PX_RETURN_IF_ERROR(read_frame(gif, frame));
  // Palette [256, 4] RGBA: Pillow leaves missing entries opaque black; without any colour map
  // Pillow opens the frame as "L" (index = grey), which is also what an identity-grey map gives.
  const ColorMapObject* map = d.ColorMap ? d.ColorMap : gif->SColorMap;
  std::vector<uint8_t> pal(256 * 4, 0);
  for (int i = 0; i < 256; ++i) {
    pal[i * 4 + 3] = 255;
    if (!map) pal[i * 4] = pal[i * 4 + 1] = pal[i * 4 + 2] = static_cast<uint8_t>(i);
  }
  for (int i = 0; map && i < map->ColorCount && i < 256; ++i) {
    pal[i * 4 + 0] = map->Colors[i].Red;
    pal[i * 4 + 1] = map->Colors[i].Green;
    pal[i * 4 + 2] = map->Colors[i].Blue;
  }
  if (transparent >= 0) pal[transparent * 4 + 3] = 0;
  const int64_t w = header.width, h = header.height;
  std::vector<uint8_t> canvas(static_cast<size_t>(w * h), static_cast<uint8_t>(transparent >= 0 ? transparent : 0));
  for (int y = 0; y < d.Height; ++y) {
    std::memcpy(&canvas[(d.Top + y) * w + d.Left], &frame[static_cast<size_t>(y) * d.Width], d.Width);
  }
  RgbImage image{w, h, std::vector<uint8_t>(static_cast<size_t>(w * h * 3))};
  for (int64_t i = 0; i < w * h; ++i) {
    const uint8_t* p = &pal[canvas[i] * 4];
    for (int c = 0; c < 3; ++c) image.pixels[i * 3 + c] = over_white(p[c], p[3]);
  }
  return image;
}

}  // namespace pixtral::image::detail
