"""Talk topics in the spirit of fakACL: NLP and speech subfields, each seen from a few angles."""

SUBFIELDS = [
    "machine translation", "speech recognition", "speech translation", "question answering", "text summarization",
    "sentiment analysis", "named entity recognition", "dependency parsing", "language modeling", "dialogue systems",
    "information retrieval", "text classification", "coreference resolution", "semantic parsing", "word embeddings",
    "multilingual models", "low-resource languages", "speech synthesis", "spoken language understanding",
    "natural language inference", "machine reading comprehension", "text generation", "evaluation metrics",
    "bias and fairness", "interpretability", "knowledge graphs", "relation extraction", "morphology",
    "code generation", "instruction tuning", "reinforcement learning from feedback", "retrieval augmented generation",
    "data augmentation", "tokenization", "sign language processing", "clinical text mining", "legal text analysis",
    "social media analysis", "fact checking", "grammatical error correction",
]
ANGLES = [
    "a new method that improves {topic}",
    "a new dataset for {topic}",
    "the main challenges of {topic} today",
    "lessons learned from deploying {topic} in practice",
    "how to evaluate systems for {topic} fairly",
    "a surprising negative result in {topic}",
    "making {topic} work for low-resource languages",
    "the history of {topic} and where it goes next",
    "an efficient model for {topic} that runs on a laptop",
    "what users really need from {topic}",
    "combining {topic} with large language models",
    "the ethics and risks of {topic}",
]
