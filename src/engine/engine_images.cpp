// Image encoding ahead of admission (loop thread): a request with images waits in `encoding_`
// until every image has features — from the image cache, or from the vision encoder run a few
// layers per step (EngineOptions::vision_layers_per_step) — and only then enters the scheduler,
// so no step has to run a whole encoder on top of its chunks and decodes (the running streams'
// inter-token latency stays near a step's).
#include <algorithm>
#include <limits>

#include "engine/engine_impl.h"

namespace pixtral {

void Engine::Impl::enqueue(ActiveRequest& a) {
  std::vector<engine::SeqId> forks;
  for (int64_t i = 1; i < a.req.sampling.n; ++i) forks.push_back(seq_of(a.req.id, i));
  Status added = scheduler_->add({.id = seq_of(a.req.id, 0), .prompt = a.req.prompt, .images = a.req.spans,
                                  .max_tokens = a.req.max_tokens, .forks = std::move(forks)});
  if (!added.is_ok()) finish_request(a, FinishReason::kError, added, false);
}

// The images of `a` that no cache holds go into one encoder job (an image present twice is
// encoded once); none left: no job.
Status Engine::Impl::start_image_job(ActiveRequest& a) {
  ImageJob job{.request = a.req.id};
  std::vector<model::ImageInput> inputs;
  for (size_t k = 0; k < a.req.images.size(); ++k) {
    if (a.features[k]) continue;
    const kv_cache::ContentHash& hash = a.req.spans[k].hash;
    if (auto f = image_cache_->find(hash)) {
      a.features[k] = std::move(f);
      ++image_cache_hits_;
      continue;
    }
    const auto same = std::find_if(job.images.begin(), job.images.end(),
                                   [&](const std::vector<size_t>& g) { return a.req.spans[g[0]].hash == hash; });
    if (same != job.images.end()) {
      same->push_back(k);
      ++image_cache_hits_;
      continue;
    }
    job.images.push_back({k});
    const PixelImage& im = a.req.images[k];
    inputs.push_back({im.height, im.width, im.pixels.data()});
  }
  if (inputs.empty()) return Status::ok();
  PX_ASSIGN_OR_RETURN(job.encoding, model_->begin_images(inputs));
  image_job_ = std::move(job);
  return Status::ok();
}

// The job's adapter outputs, split per image, into the image cache and the request.
Status Engine::Impl::finish_image_job(ActiveRequest& a) {
  auto owner = std::make_shared<backend::TensorBuffer>(model_->finish_images(image_job_->encoding));
  image_encoder_runs_ += static_cast<int64_t>(image_job_->images.size());
  int64_t row = 0;
  for (const std::vector<size_t>& group : image_job_->images) {
    const int64_t rows = a.req.image_rows[group[0]];
    if (row + rows > owner->tensor().dim(0))
      return internal_error("the vision encoder returned fewer rows than the images' [IMG] tokens");
    auto features = std::make_shared<engine::ImageFeatures>();
    features->owner = owner;
    features->rows = owner->tensor().rows(row, row + rows);
    row += rows;
    image_cache_->insert(a.req.spans[group[0]].hash, features);
    for (size_t k : group) a.features[k] = features;
  }
  if (row != owner->tensor().dim(0)) return internal_error("the vision encoder returned an unexpected number of rows");
  return Status::ok();
}

void Engine::Impl::advance_encoding() {
  encoding_work_ = {};
  const bool streams_wait = scheduler_->num_running() > 0 && options_.vision_layers_per_step > 0;
  int64_t budget = streams_wait ? options_.vision_layers_per_step : std::numeric_limits<int64_t>::max();
  while (!encoding_.empty()) {
    auto it = active_.find(encoding_.front());
    if (it == active_.end() || it->second->done) {  // cancelled while it waited
      if (image_job_ && image_job_->request == encoding_.front()) image_job_.reset();
      encoding_.pop_front();
      continue;
    }
    ActiveRequest& a = *it->second;
    if (!image_job_) {
      const Status s = start_image_job(a);
      if (image_job_) ++encoding_work_.started;
      if (!s.is_ok()) {
        encoding_.pop_front();
        finish_request(a, FinishReason::kError, s, false);
        continue;
      }
    }
    if (image_job_) {
      if (budget <= 0) return;
      const int64_t layers = model_->advance_images(image_job_->encoding, budget);
      budget -= layers;
      encoding_work_.layers += layers;
      if (!model_->images_done(image_job_->encoding)) return;
      const Status s = finish_image_job(a);
      ++encoding_work_.finished;
      image_job_.reset();
      if (!s.is_ok()) {
        encoding_.pop_front();
        finish_request(a, FinishReason::kError, s, false);
        continue;
      }
    }
    encoding_.pop_front();
    enqueue(a);
  }
}

}  // namespace pixtral
