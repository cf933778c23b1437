// Placeholder translation unit until the decoders land.
#include "image/image.h"
