//! The provider's hosted tools as a turn shows them: an image generation call is a
//! `generated_image` item (added without an image, updated with each partial image, done with
//! the final one, whose bytes are stored as an attachment of the thread and named by a signed
//! URL of this server: protocol §8.14); a web search, file search or code interpreter call is a
//! task of the open workflow (the reasoning one when open), updated as it goes.

use serde_json::json;

use super::events::{WorkflowInProgress, WorkflowTask};
use super::hosted_tasks::{partial_data_url, partial_progress, step_task};
use super::run::{Ended, TurnRun};
use crate::attachments::media;
use crate::ids::{prefix, AttachmentId, ItemId};
use crate::metrics::METRICS;
use crate::model::{image_mime, image_result, HostedEvent, HostedKind};
use crate::protocol::events::NoticeLevel;
use crate::protocol::{
    Annotation, AnnotationTag, AttachmentKind, GeneratedImage, GeneratedImageItem, ItemBody,
    ThreadItem, ThreadItemUpdate, ThreadStreamEvent, Timestamp,
};
use crate::store::cluster::LeaseState;
use crate::store::GeneratedFile;

/// The hosted calls of one model round that have not finished.
#[derive(Default)]
pub(super) struct HostedRound {
    images: Vec<ImageInProgress>,
    steps: Vec<Step>,
}

struct ImageInProgress {
    call_id: String,
    item_id: ItemId,
    created_at: Timestamp,
}

/// A search or code call shown as a task of workflow `workflow_id`.
struct Step {
    call_id: String,
    kind: HostedKind,
    workflow_id: ItemId,
    task: usize,
    code: String,
}

impl HostedRound {
    /// Counts the unfinished calls as `outcome`; none is left.
    fn count_unfinished(&mut self, outcome: &str) {
        let kinds = self
            .images
            .drain(..)
            .map(|_| HostedKind::ImageGeneration)
            .chain(self.steps.drain(..).map(|s| s.kind));
        for kind in kinds {
            count(kind, outcome);
        }
    }

    /// The model's stream broke: the unfinished calls failed.
    pub(super) fn failed(&mut self) {
        self.count_unfinished("failed");
    }
}

/// A round dropped with calls unfinished ended because the client left (protocol §8.8: the
/// turn stores nothing of them); a round that ends otherwise finishes or fails each first.
impl Drop for HostedRound {
    fn drop(&mut self) {
        self.count_unfinished("cancelled");
    }
}

fn count(kind: HostedKind, outcome: &str) {
    METRICS
        .hosted_tool_calls
        .with_label_values(&[kind.as_str(), outcome])
        .inc();
}

impl TurnRun<'_> {
    /// Shows one step of a hosted tool call.
    pub(super) async fn on_hosted(
        &mut self,
        event: HostedEvent,
        hosted: &mut HostedRound,
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Result<(), Ended> {
        match event {
            HostedEvent::Started {
                kind: HostedKind::ImageGeneration,
                call_id,
            } => self.image_started(call_id, hosted, workflow).await?,
            HostedEvent::PartialImage {
                call_id,
                index,
                b64,
            } => self.image_partial(&call_id, index, b64, hosted).await,
            HostedEvent::Done {
                kind: HostedKind::ImageGeneration,
                item,
            } => {
                let call_id = item["id"].as_str().unwrap_or_default().to_string();
                if !hosted.images.iter().any(|i| i.call_id == call_id) {
                    self.image_started(call_id.clone(), hosted, workflow)
                        .await?;
                }
                let at = hosted.images.iter().position(|i| i.call_id == call_id);
                let image = hosted.images.remove(at.expect("started above"));
                self.image_done(image, image_result(&item)).await?;
            }
            HostedEvent::Started { kind, call_id } => {
                let task = step_task(kind, "in_progress", None);
                self.step_started(kind, call_id, task, hosted, workflow)
                    .await;
            }
            HostedEvent::Progress {
                kind: HostedKind::ImageGeneration,
                ..
            } => {}
            HostedEvent::Progress {
                kind,
                call_id,
                status,
            } => {
                let task = step_task(kind, &status, None);
                self.step_update(&call_id, task, hosted, workflow).await;
            }
            // Handled by the round: it becomes a citation of the answer.
            HostedEvent::ContainerFile { .. } => {}
            HostedEvent::CodeDelta { call_id, delta } => {
                if let Some(step) = hosted.steps.iter_mut().find(|s| s.call_id == call_id) {
                    step.code.push_str(&delta);
                }
            }
            HostedEvent::Done { kind, item } => {
                let call_id = item["id"].as_str().unwrap_or_default().to_string();
                let failed = matches!(item["status"].as_str(), Some("failed" | "incomplete"));
                count(kind, if failed { "failed" } else { "completed" });
                let code = hosted
                    .steps
                    .iter()
                    .find(|s| s.call_id == call_id)
                    .map(|s| s.code.clone());
                let task = step_task(
                    kind,
                    if failed { "failed" } else { "completed" },
                    Some((&item, code)),
                );
                self.step_update(&call_id, task, hosted, workflow).await;
                hosted.steps.retain(|s| s.call_id != call_id);
            }
        }
        Ok(())
    }

    /// `thread.item.added` of a `generated_image` without an image (protocol §8.14); an open
    /// workflow closes first, as before an answer.
    async fn image_started(
        &mut self,
        call_id: String,
        hosted: &mut HostedRound,
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Result<(), Ended> {
        self.close_workflow(workflow).await?;
        let image = ImageInProgress {
            call_id,
            item_id: ItemId::generate(prefix::MESSAGE),
            created_at: self.next_timestamp(),
        };
        let item = self.image_item(&image, None);
        self.writer
            .send(&ThreadStreamEvent::ItemAdded { item })
            .await;
        hosted.images.push(image);
        Ok(())
    }

    /// `generated_image.updated` with a partial image: shown (a data URL), never kept.
    async fn image_partial(
        &mut self,
        call_id: &str,
        index: u32,
        b64: String,
        hosted: &HostedRound,
    ) {
        let Some(image) = hosted.images.iter().find(|i| i.call_id == call_id) else {
            return;
        };
        let expected = self
            .model
            .hosted_tools()
            .iter()
            .find(|t| t.kind == HostedKind::ImageGeneration.as_str())
            .and_then(|t| t.int_param("partial_images"));
        let event = ThreadStreamEvent::ItemUpdated {
            item_id: image.item_id.clone(),
            update: ThreadItemUpdate::GeneratedImageUpdated {
                image: GeneratedImage {
                    id: call_id.to_string(),
                    url: partial_data_url(&b64),
                },
                progress: Some(partial_progress(index, expected)),
            },
        };
        self.writer.send(&event).await;
    }

    /// The final image: its bytes stored as an attachment of the thread, the item committed
    /// with a signed URL of this server and announced; or, without an image, the item
    /// withdrawn and the reason told in-band.
    async fn image_done(
        &mut self,
        image: ImageInProgress,
        result: Result<Vec<u8>, String>,
    ) -> Result<(), Ended> {
        let stored = match result {
            Ok(bytes) => self.store_image(&image.call_id, &bytes).await,
            Err(reason) => Err(reason),
        };
        match stored {
            Ok(url) => {
                count(HostedKind::ImageGeneration, "completed");
                let item = self.image_item(
                    &image,
                    Some(GeneratedImage {
                        id: image.call_id.clone(),
                        url,
                    }),
                );
                self.commit_and_announce(item, LeaseState::Streaming).await
            }
            Err(reason) => {
                count(HostedKind::ImageGeneration, "failed");
                self.withdraw_image(&image, &reason).await;
                Ok(())
            }
        }
    }

    /// The image's bytes kept as the thread owner's attachment; its content URL.
    async fn store_image(&mut self, call_id: &str, bytes: &[u8]) -> Result<String, String> {
        let id = AttachmentId::generate();
        let mime = image_mime(bytes);
        let extension = mime.trim_start_matches("image/");
        let name = format!("generated-image.{extension}");
        let file = GeneratedFile {
            id: id.as_str(),
            user_id: self.owner.as_str(),
            thread_id: self.thread_id.as_str(),
            name: &name,
            mime_type: mime,
            kind: AttachmentKind::Image,
            bytes,
        };
        match self.env.store.insert_generated_file(&file).await {
            Ok(()) => Ok(self.links.url(id.as_str())),
            Err(error) => {
                tracing::warn!(thread_id = %self.thread_id, %call_id, %error, "could not store a generated image");
                Err("the image could not be stored".into())
            }
        }
    }

    /// A file the code interpreter made, cited by the answer: fetched from the provider, kept
    /// as an attachment of the thread, and cited as a URL source the user downloads from
    /// (a file source naming it when it cannot be fetched).
    pub(super) async fn container_file_source(
        &mut self,
        container_id: &str,
        file_id: &str,
        filename: &str,
        index: Option<i64>,
    ) -> Annotation {
        let url = match self.model.container_file(container_id, file_id).await {
            Ok(bytes) => self.store_file(filename, &bytes).await,
            Err(error) => {
                tracing::warn!(thread_id = %self.thread_id, %file_id, %error, "could not fetch a code interpreter file");
                None
            }
        };
        let source = match url {
            Some(url) => json!({ "title": filename, "type": "url", "url": url }),
            None => json!({ "title": filename, "type": "file", "filename": filename }),
        };
        Annotation {
            kind: AnnotationTag,
            source,
            index,
        }
    }

    /// A file kept as the thread owner's attachment (its type from its name); its URL.
    async fn store_file(&mut self, filename: &str, bytes: &[u8]) -> Option<String> {
        let id = AttachmentId::generate();
        let mime =
            media::normalize("", filename).unwrap_or_else(|| "application/octet-stream".into());
        let name = crate::text::shorten_for_display(filename, 255);
        let file = GeneratedFile {
            id: id.as_str(),
            user_id: self.owner.as_str(),
            thread_id: self.thread_id.as_str(),
            name: &name,
            mime_type: &mime,
            kind: media::kind_of(&mime),
            bytes,
        };
        match self.env.store.insert_generated_file(&file).await {
            Ok(()) => Some(self.links.url(id.as_str())),
            Err(error) => {
                tracing::warn!(thread_id = %self.thread_id, %error, "could not store a code interpreter file");
                None
            }
        }
    }

    /// `thread.item.removed` of an image that will not come, and a notice saying why.
    async fn withdraw_image(&mut self, image: &ImageInProgress, reason: &str) {
        self.writer
            .send(&ThreadStreamEvent::ItemRemoved {
                item_id: image.item_id.clone(),
            })
            .await;
        let notice = ThreadStreamEvent::Notice {
            level: NoticeLevel::Warning,
            message: format!("The image could not be generated: {reason}."),
            title: None,
        };
        self.writer.send(&notice).await;
    }

    /// At the end of a round: images the provider never finished are withdrawn.
    pub(super) async fn end_hosted(&mut self, hosted: &mut HostedRound) {
        for image in std::mem::take(&mut hosted.images) {
            count(HostedKind::ImageGeneration, "failed");
            self.withdraw_image(&image, "the provider sent no image")
                .await;
        }
        for step in std::mem::take(&mut hosted.steps) {
            count(step.kind, "failed");
        }
    }

    fn image_item(&self, image: &ImageInProgress, shown: Option<GeneratedImage>) -> ThreadItem {
        ThreadItem {
            id: image.item_id.clone(),
            thread_id: self.thread_id.clone(),
            created_at: image.created_at,
            body: ItemBody::GeneratedImage(GeneratedImageItem { image: shown }),
        }
    }

    /// A search or code call joins the open workflow (opening one if none is): after the
    /// thoughts shown so far, when it is the reasoning workflow.
    async fn step_started(
        &mut self,
        kind: HostedKind,
        call_id: String,
        task: WorkflowTask,
        hosted: &mut HostedRound,
        workflow: &mut Option<WorkflowInProgress>,
    ) {
        if let Some(open) = workflow.as_mut() {
            self.settle_thoughts(open).await;
        }
        let index = self.add_workflow_task(workflow, task).await;
        let Some(open) = workflow.as_mut() else {
            return;
        };
        open.thoughts_from = open.tasks.len();
        hosted.steps.push(Step {
            call_id,
            kind,
            workflow_id: open.id.clone(),
            task: index,
            code: String::new(),
        });
    }

    /// The step's task as it now stands, sent when it changed.
    async fn step_update(
        &mut self,
        call_id: &str,
        task: WorkflowTask,
        hosted: &HostedRound,
        workflow: &mut Option<WorkflowInProgress>,
    ) {
        let Some(step) = hosted.steps.iter().find(|s| s.call_id == call_id) else {
            return;
        };
        let current = workflow
            .as_ref()
            .filter(|w| w.id == step.workflow_id)
            .and_then(|w| w.tasks.get(step.task));
        if current.is_some_and(|t| *t != task) {
            self.update_workflow_task(workflow, step.task, task).await;
        }
    }
}
