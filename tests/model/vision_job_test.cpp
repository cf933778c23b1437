// The vision encoder run in steps (begin, advance a few layers at a time, finish), as the engine
// spreads an encoding over its steps, gives exactly the features of one encode() call.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "golden_util.h"
#include "model/pixtral_model.h"

namespace pixtral::model::testing {
namespace {

TEST(VisionJob, StepsEqualOneEncode) {
  auto cpu = backend::make_cpu_backend();
  const GoldenCase gc = load_golden_case("gqa_f32_three_images");
  auto model = PixtralModel::load(golden_model(gc.model).mistral_dir, *cpu);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  std::vector<ImageInput> images;
  for (const auto& img : gc.images) images.push_back({img.height, img.width, img.pixels.data()});
  auto whole = (*model)->encode_images(images);
  ASSERT_TRUE(whole.is_ok()) << whole.status().to_string();
  const std::vector<float> want = download_f32(*cpu, *whole);
  for (int64_t per_call : {1, 2, 1000}) {
    auto job = (*model)->begin_images(images);
    ASSERT_TRUE(job.is_ok()) << job.status().to_string();
    int64_t calls = 0;
    while (!(*model)->images_done(*job)) {
      EXPECT_GT((*model)->advance_images(*job, per_call), 0);
      ++calls;
    }
    EXPECT_EQ((*model)->advance_images(*job, per_call), 0);  // nothing left
    const int64_t layers = (*model)->config().vision.num_layers;
    EXPECT_EQ(calls, (layers + per_call - 1) / per_call);
    EXPECT_EQ(download_f32(*cpu, (*model)->finish_images(*job).tensor()), want) << per_call << " layers per call";
  }
}

TEST(VisionJob, RejectsBadImagesAtBegin) {
  auto cpu = backend::make_cpu_backend();
  auto model = PixtralModel::load(golden_model("gqa_f32").mistral_dir, *cpu);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  std::vector<float> pixels(3 * 10 * 10, 0.0f);
  auto job = (*model)->begin_images({{10, 10, pixels.data()}});  // not a multiple of the patch
  ASSERT_FALSE(job.is_ok());
  EXPECT_NE(job.status().message().find("patch size"), std::string::npos) << job.status().to_string();
}

}  // namespace
}  // namespace pixtral::model::testing
