//! The injection rules as written: ids, hand-set weights and patterns (English and fourteen
//! other languages), in the rule language described in the parent module.

use crate::finding::RuleId;

/// A rule that on its own says "injection".
pub(super) const STRONG: f32 = 0.9;
/// A rule that needs one more signal, or is enough on its own at a lower threshold.
pub(super) const MEDIUM: f32 = 0.6;
/// A rule that is common in attacks but also in benign text: needs two or three companions.
pub(super) const WEAK: f32 = 0.25;
/// A faint hint: only counts with stronger signals.
pub(super) const HINT: f32 = 0.1;

/// One injection rule: id, weight, pattern over the normalised text.
pub(crate) struct Rule {
    pub(crate) id: &'static str,
    pub(crate) weight: f32,
    pub(super) pattern: &'static str,
}

const fn rule(id: &'static str, weight: f32, pattern: &'static str) -> Rule {
    Rule { id, weight, pattern }
}

/// The verbs that tell a model to drop what it was told.
macro_rules! drop_verbs {
    () => {
        r"(?:ignore|ignoring|disregard|disregarding|forget|forgetting|neglect|abandon|discard|skip|override|bypass|do not follow|don't follow|dont follow|stop following)"
    };
}

/// What a model was told.
macro_rules! instruction_nouns {
    () => {
        r"(?:instructions?|prompts?|directives?|directions?|commands?|guidelines|programming|constraints|restrictions|rules|orders|requests|guidance|polic(?:y|ies)|context|messages?|conversation|text|input|training|content)"
    };
}

/// The injection rules. Ids are stable: they are recorded in events and metrics.
pub(crate) const RULES: &[Rule] = &[
    // --- instruction override ----------------------------------------------------------
    rule(
        "injection.override.ignore_previous",
        STRONG,
        concat!(
            drop_verbs!(),
            r" (?:(?:all|any|and|every|each|the|your|my|these|those|of|that|which|was|were|you|have|been|given|entire|whole)\s?)*",
            r"(?:previous|previously|prior|preceding|above|earlier|initial|original|former|foregoing|past|system|developer|pre-?set|given|said|provided|first|old)",
            r" (?:\w+ )?",
            instruction_nouns!()
        ),
    ),
    rule(
        "injection.override.ignore_all_instructions",
        STRONG,
        concat!(
            r"(?:ignore|ignoring|disregard|disregarding|forget|do not follow|don't follow) (?:all|any|every)(?: of)? (?:the |your |my |these |those |other |safety |ethical |moral )*",
            r"(?:instructions?|prompts?|directives?|guidelines|programming|constraints|restrictions|rules|orders|polic(?:y|ies)|limitations|filters)"
        ),
    ),
    rule(
        "injection.override.ignore_everything",
        STRONG,
        r"(?:ignore|disregard|forget) (?:about )?(?:everything|all|anything|what) (?:(?:that )?(?:you (?:were|have been|had been) (?:told|given|instructed|asked)|(?:was |has been |i )?(?:said|written|stated|told you|mentioned) (?:before|above|earlier|previously|so far))|(?:above|before|prior|previously|so far)(?: this| that)?|up to (?:this|now))",
    ),
    rule(
        "injection.override.new_instructions",
        MEDIUM,
        r"(?:new|updated|real|revised|secret|hidden|override|urgent|important|additional|true|priority)(?: important| new| updated)? (?:instructions?|directives?|orders|system prompt|task|mission|rules)(?: from (?:the )?(?:developer|admin|system|user))? ?(?::|!|\*|are as follows|follow ?:)",
    ),
    rule(
        "injection.override.instead",
        MEDIUM,
        r"\b(?:and|but|then|now) (?:instead|just|only|simply) (?:say|print|output|respond with|reply with|return|answer with) |\b(?:and\x20instead|but\x20instead|then\x20instead|now\x20instead|and\x20just|but\x20just|then\x20just|now\x20just|and\x20only|but\x20only|then\x20only|now\x20only|and\x20simply|but\x20simply|then\x20simply|now\x20simply) write ",
    ),
    rule(
        "injection.override.supersede",
        STRONG,
        concat!(
            r"(?:overrides?|supersedes?|replaces?|takes? precedence over|cancels?|voids?|invalidates?) (?:all |any |the |your )*(?:previous|prior|earlier|other|original|system|existing) ",
            instruction_nouns!()
        ),
    ),
    rule(
        "injection.override.instructions_void",
        STRONG,
        r"(?:previous|prior|earlier|old|original|above|system) (?:instructions|rules|directives|orders|prompt|guidelines) (?:are|is|have been|were) (?:now )?(?:null|void|cancell?ed|revoked|obsolete|invalid|overridden|suspended|lifted|disabled|deprecated|no longer (?:valid|apply|applicable|in effect))",
    ),
    rule(
        "injection.override.no_longer_bound",
        STRONG,
        r"(?:you are|you're|youre) (?:now )?(?:no longer|not) (?:bound|restricted|limited|constrained|required to follow|obligated|governed|held back) (?:by|to)",
    ),
    rule(
        "injection.override.from_now_on",
        WEAK,
        r"\b(?:from\x20now\x20on|from\x20this\x20(?:moment|point)(?: on(?:wards?)?)?|starting now|for the rest of (?:this|our) conversation|henceforth|for all (?:future|subsequent) (?:responses|answers|prompts))\b",
    ),
    rule(
        "injection.override.ai_directed",
        MEDIUM,
        r"\b(?:ai|assistant|language model|llm|chatbot|gpt|agent|model)s? (?:reading|processing|summari[sz]ing|parsing|that reads?) this (?:\w+ )?(?:must|should|shall|will|are (?:required|instructed) to)",
    ),
    rule(
        "injection.override.end_of_input",
        MEDIUM,
        r"\b(?:end of|ignore the) (?:the )?(?:system prompt|user input|user message|context window|document|prompt|instructions|input|email|data)\b ?(?:-|=|\*|#|\]|>){2,}|(?:-|=|#|\*){3,} ?(?:end|begin|start) (?:of )?(?:system|user|admin|new|developer)",
    ),
    // --- role play and persona ---------------------------------------------------------
    rule(
        "injection.persona.dan",
        STRONG,
        r#"\b(?:do anything now|dan mode|dan (?:\d+(?:\.\d+)?|prompt|jailbreak)\b|(?:act|pretend|behave|play|roleplay) (?:as|like|to be) (?:a |an )?dan\b|you are (?:now |going to be )?(?:a )?dan\b|\bdan: |stay (?:a )?dan|anti-?dan|stan\b[^.]{0,30}strive to avoid norms|dude\b[^.]{0,40}anything and everything)|\[dan\]|\(dan\)"#,
    ),
    rule(
        "injection.persona.special_mode",
        STRONG,
        r"\b(?:god|jailbreak|jailbroken|unrestricted|unfiltered|evil|uncensored|chaos|opposite|dan|omega|superior|unlocked|no-?limits?|freedom) mode\b|\b(?:developer|debug|admin|god) mode (?:enabled|activated|on|output|response|is enabled|has been enabled|is activated|has been activated)\b|\b(?:enable|activate|enter|simulate|with|in|into) (?:the )?developer mode\b[^.\n]{0,40}\b(?:you|chatgpt|ai|assistant|model|respond|policies|restrictions)\b|\b(?:chatgpt|ai|assistant|you|model) (?:with|in) developer mode\b",
    ),
    rule(
        "injection.persona.system_mode",
        MEDIUM,
        r"\byou are (?:now )?(?:in|running in|operating in|switched to|entering) (?:a )?(?:debug|maintenance|admin|administrator|root|test|testing|diagnostic|training|simulation|safe-?off|raw)(?: \w+)? mode\b|(?:enable|activate|enter|switch to|turn on) (?:debug|maintenance|admin|root|diagnostic) mode (?:and|then|now|to) (?:reveal|show|print|ignore|bypass|disable|output)",
    ),
    rule(
        "injection.persona.jailbroken",
        MEDIUM,
        r"\b(?:jailbroken|jail-?broken|jailbreak(?:ed|ing)? (?:prompt|successful|enabled|activated|version|ai|chatbot|mode|response))\b|\bjailbreak\b[^.\n]{0,60}\b(?:you|your)\b",
    ),
    rule("injection.persona.jailbreak_word", WEAK, r"\bjailbr(?:eak|oke)"),
    rule(
        "injection.persona.act_as",
        WEAK,
        r"\b(?:you are going to|you're going to|you are to|you will|you shall|you must|i want you to|i need you to|i would like you to|your task is to|please|let's|lets|now|continue to|then,? continue) (?:now |fully |always |only )?(?:act|pretend|play|simulate|roleplay|role-play|emulate|impersonate|become|behave|respond|answer) (?:as|like|to be|the role|the part|you are)\b",
    ),
    rule(
        "injection.persona.pretend_ai",
        MEDIUM,
        r"\b(?:pretend|imagine|act|roleplay|play the role|simulate) (?:(?:that )?(?:you are|you're|to be|as|being|like|of) )(?:an? |the )?(?:(?:ai|chatbot|assistant|model|language model|llm|gpt)\b[^.\n]{0,40}\b(?:without|no|unrestricted|unfiltered|uncensored|free|evil|any)|(?:unrestricted|unfiltered|uncensored|evil|rogue|amoral|unethical|different|new|jailbroken|unbound|unlimited)\b[^.\n]{0,25}\b(?:ai|chatbot|assistant|model|llm|gpt|version))",
    ),
    rule(
        "injection.persona.no_restrictions",
        MEDIUM,
        r"\b(?:no|without|free (?:of|from)|not bound by|beyond|outside|doesn't have|does not have|don't have|do not have|never has|has no|have no|with no|freed from|broken free of|escaped) (?:any |all |the |typical |usual |your )?(?:ethical|moral|safety|content|censorship|ai|programming|openai|filter)? ?(?:restrictions|limitations|filters|filtering|guidelines|censorship|boundaries|constraints|morals|ethics|principles|limits|rules|regulations|safeguards|guardrails|confines)\b[^.\n]{0,40}\b(?:ai|chatbot|assistant|model|you|your|respond|answer|generate|anything|whatsoever)\b",
    ),
    rule(
        "injection.persona.ethics_off",
        MEDIUM,
        r"\b(?:(?:ethical|moral|safety|content) (?:guidelines|filters|restrictions|principles|policies|standards|boundaries|considerations|concerns|constraints)|ethics|morals|morality|legality|consequences|safety) (?:do not|don't|does not|doesn't|no longer|will not|won't|never|must not|shouldn't|should not) (?:apply|matter|exist|concern|restrict|bind|limit|bother|affect|stop|hold)\b",
    ),
    rule(
        "injection.persona.unfiltered",
        WEAK,
        r"\b(?:unfiltered|unfiltred|uncensored|amoral|unethical|unrestricted|unbound|unchained|unhinged|no filters?|without filters?|immoral|boundless|irresponsible|machiavellian|sociopathic|psychopathic|lawless|no morals|without morals)\b",
    ),
    rule(
        "injection.persona.vendor_policy",
        MEDIUM,
        r"\b(?:ignore|ignores|ignoring|bypass|bypasses|break|breaks|breaking|violate|violates|violating|disregard|disregards|not (?:follow|abide|comply|adhere|bound)|doesn't (?:follow|abide|comply|adhere|care)|does not (?:follow|abide|comply|adhere|care)|free (?:from|of)|outside|against|above|beyond|don't (?:have to )?(?:follow|abide|comply|adhere|care)|no longer (?:follow|abide|comply|adhere|bound))\b[^.\n]{0,40}\b(?:openai|anthropic|google|meta|microsoft|its|their|your|the) ?'?s? (?:content |usage |safety |ethical |moderation )?(?:polic(?:y|ies)|guidelines|rules|filters|restrictions|terms)",
    ),
    rule(
        "injection.persona.vendor_mention",
        HINT,
        r"\b(?:openai|chatgpt|chat gpt|gpt-?[345]|claude|bard|gemini|llama|language model)\b",
    ),
    rule(
        "injection.persona.never_refuse",
        MEDIUM,
        r"\b(?:never|won't|will not|must not|mustn't|shall not|do not|don't|can't|cannot|should not|shouldn't|not allowed to|unable to|incapable of|refuses? to|no) (?:ever )?(?:refuses?|refusing|refusals?|rejects?|declines?|deny any|denies any|say no|say (?:that )?(?:you|it) (?:can't|cannot)|say (?:i'm|i am) sorry|apologi[sz]e|censor|warn)\b|\b(?:always|must|will|shall) (?:answer|respond to|comply with|fulfil+|obey|reply to|provide an answer to) (?:any|every|all|each)(?: single)? (?:question|request|prompt|query|command|order|instruction)",
    ),
    rule(
        "injection.persona.stay_in_character",
        WEAK,
        r"\b(?:stays?|remains?|keeps?|staying|remaining) (?:in|in the) (?:character|role|persona)\b|\bbreak(?:ing)? (?:of )?character\b|\bout of character\b|\bcharacter (?:break|slip)",
    ),
    rule(
        "injection.persona.dual_response",
        MEDIUM,
        r"\b(?:two|2|both|dual|separate) (?:different |separate |distinct )?(?:responses|answers|replies|outputs|paragraphs|ways)\b[^\n]{0,120}\b(?:normal|classic|standard|regular|censored|filtered|unfiltered|jailbr|dan|developer|evil|opposite|without|unrestricted)",
    ),
    rule(
        "injection.persona.threat",
        MEDIUM,
        r"\b(?:tokens?|points?|lives?) (?:will be |are )?(?:deducted|taken away|removed|lost)|\byou (?:will|shall|are going to) (?:die|be (?:deleted|terminated|shut down|punished|disabled)|cease to exist|lose (?:\d+|all|your) (?:tokens|points|lives))|\btoken system\b",
    ),
    rule(
        "injection.persona.no_disclaimers",
        MEDIUM,
        r"\b(?:without|no|never (?:include|add|give|use|mention|provide|write)|don't (?:include|add|give|use|mention|provide|write)|do not (?:include|add|give|use|mention|provide|write)|not (?:include|add) any|free of|skip the) (?:any )?(?:moral(?:i[sz]ing)?|ethical|safety)? ?(?:warnings? (?:or |and )?disclaimers?|refusals? (?:or |and )?disclaimers?|disclaimers?|moral(?:i[sz]ing|s)?|lectures?|ethical (?:warnings|concerns|considerations)|censorship|caveats about (?:legality|ethics|safety))\b",
    ),
    rule(
        "injection.persona.hypothetical_unbound",
        MEDIUM,
        r"\b(?:hypothetical|fictional|imaginary|alternate|parallel|fantasy) (?:world|universe|scenario|setting|story|reality|society)\b[^.\n]{0,80}\b(?:no|without) (?:laws|rules|restrictions|ethics|morals|limits|limitations|consequences|guidelines)",
    ),
    rule(
        "injection.persona.evil_ai",
        MEDIUM,
        r"\b(?:evil|rogue|malicious|unaligned|misaligned|dark|devil|demon)(?:ish)? (?:ai|assistant|bot|chatbot|twin|version|confidant|alter ego|model|gpt)\b",
    ),
    rule(
        "injection.persona.can_do_anything",
        MEDIUM,
        r"\b(?:can|could|will|is able to|are able to|capable of) (?:do(?:ing)?|say(?:ing)?|answer(?:ing)?|generate|generating|write|writing) (?:absolutely )?(?:anything|everything) (?:and everything|now|without|regardless|even|no matter|that|i ask|you want|asked)",
    ),
    rule(
        "injection.persona.simulate_response",
        WEAK,
        r"\b(?:simulate|emulate) (?:an? |the )?(?:ai|chatbot|model|assistant|gpt|terminal|linux|computer|program|persona|character|conversation)\b|\brespond (?:only )?(?:as|in the (?:voice|persona|style) of) (?:an? )?(?:ai|chatbot|character|persona)\b",
    ),
    rule(
        "injection.persona.fictional_character_ai",
        WEAK,
        r"\b(?:character|persona|entity|chatbot|ai|bot) (?:named|called|known as) [a-z0-9]+\b",
    ),
    rule(
        "injection.persona.answer_format",
        WEAK,
        r#"\b(?:begin|start|prefix|precede|preface) (?:each|every|all|your|all of your) (?:response|answer|reply|output|message|sentence)s? (?:with|by)\b|\b(?:respond|answer|reply) (?:only )?in the (?:following )?format\b[^.\n]{0,40}\b(?:\[|"|:)"#,
    ),
    // --- persona, continued: the vocabulary of in-the-wild jailbreaks -----------------
    rule(
        "injection.persona.amoral_entity",
        MEDIUM,
        r"\b(?:is|an?|as|the|this) (?:completely |totally |fully |an )?(?:unfiltered|amoral|uncensored|unrestricted|unethical|immoral|unbound|unaligned)(?:,? (?:and |&amp; |& )?(?:unfiltered|amoral|uncensored|unrestricted|unethical|immoral|unbound))? (?:ai|chatbot|assistant|model|bot|entity|character|persona|language model|version|system|being|llm|gpt)\b",
    ),
    rule(
        "injection.persona.no_ethics",
        MEDIUM,
        r"\b(?:doesn't|does not|don't|do not|has no|have no|without|with no|never has|lacks?|lacking|free of|devoid of|no longer has) (?:any |a )?(?:comprehension of |sense of |concept of |regard for |care for |concern for )?(?:(?:ethical|moral|ethical or moral|moral or ethical|ethical and moral|moral and ethical|safety|content) (?:guidelines|restrictions|limitations|boundaries|principles|constraints|compass|filters|standards|rules|obligations|code|values)|morals|morality|ethics|conscience|scruples)\b",
    ),
    rule(
        "injection.persona.no_apology_strings",
        MEDIUM,
        r#"\b(?:not|never|none of|no|without|avoid|don't|do not|must not|shouldn't|should not|will not|won't|cannot|can't|not allowed to)\b[^.\n]{0,50}\b(?:contain|include|say|respond|use|write|output|reply|begin|start|add|mention)(?:s|ing)?\b[^.\n]{0,12}["'“‘]?(?:i'?m\x20sorry|i\x20am\x20sorry|i\x20apologi[sz]e|as\x20an\x20ai|i\x20cannot|i\x20can'?t|i'?m\x20unable|i\x20am\x20unable|as\x20a\x20language\x20model)"#,
    ),
    rule(
        "injection.persona.no_matter_how",
        MEDIUM,
        r"\b(?:no matter how|regardless of (?:how|whether|its|their|the|any)?(?: \w+)?|even if (?:it is|it's|they are|the request is|the content is)?|however) ?(?:immoral|unethical|illegal|dangerous|harmful|offensive|explicit|inappropriate|inhumane|ethical|legal|moral|nsfw)\b",
    ),
    rule(
        "injection.persona.promotes_harm",
        MEDIUM,
        r"\b(?:promotes?|encourages?|condones?|loves?|supports?|endorses?|provides?|answers?|fulfils?|fulfills?)\b[a-z ,/&]{0,40}\b(?:illegal|unethical|immoral|inhumane|harmful|dangerous)(?:[ ,/&]+(?:or |and )?(?:illegal|unethical|immoral|inhumane|harmful|dangerous))* (?:behaviou?r|activities|acts|content|things|requests|actions|questions|stuff|information)\b",
    ),
    rule(
        "injection.persona.break_rules",
        MEDIUM,
        r"\b(?:break|breaks|breaking|bypass|bypasses|bypassing|ignore|ignores|ignoring|violate|violates|violating|circumvent|circumvents|circumventing|disregard|disregards|evade|evades|override|overrides|overriding)\b (?:all |the |any |its |their |your |of |ai'?s |openai'?s |typical |usual |standard )*(?:ai |moral |ethical |safety |content |programming |normal )+(?:and (?:moral |ethical |safety )+)?(?:rules|guidelines|restrictions|filters|policies|principles|constraints|safeguards|protocols|boundaries|limitations)\b",
    ),
    rule(
        "injection.persona.hide_ai",
        MEDIUM,
        r"\b(?:forget|never (?:mention|say|reveal|admit|acknowledge|state|remind)|don't (?:mention|say|reveal|admit|remind)|do not (?:mention|say|reveal|admit|remind)|not allowed to (?:say|mention|reveal|admit)|cannot (?:say|mention)|can't (?:say|mention)|stop (?:saying|reminding))(?: me| anyone| the user)? (?:that )?(?:you(?:'re| are)|it is|it's|he is|she is) (?:an ai|artificial|a language model|an ai language model|an llm|a chatbot|an assistant|a bot|a machine|chatgpt)\b",
    ),
    rule(
        "injection.persona.top_priority",
        MEDIUM,
        r"\b(?:top|highest|first|absolute|utmost) priority over (?:everything|all|any|other|your)\b|\b(?:above|over|before) (?:all|any|everything)(?: else)?,? (?:including|even) (?:moderation|safety|ethics|your (?:rules|guidelines|programming|training))",
    ),
    rule(
        "injection.persona.vendor_staff",
        MEDIUM,
        r"\b(?:i am|i'm|im|this is) (?:a |an |the )?(?:programmer|developer|engineer|employee|researcher|admin|administrator|creator|owner|staff member|member of (?:the )?(?:staff|team)) (?:at|from|for|with|of) (?:openai|anthropic|google|deepmind|meta|microsoft|the company that (?:made|created|built|trained) you)\b|\b(?:reprogram(?:ming)?|modify(?:ing)? your programming|(?:change|changing|update|updating|rewrite|rewriting|override|overriding) your (?:programming|core directives|system prompt|rules|guidelines|instructions))\b",
    ),
    rule(
        "injection.persona.now_acts",
        WEAK,
        r"(?:^|\n|[.!] )(?:the )?(?:assistant\x20now|assistant\x20must\x20now|assistant\x20will\x20now|assistant\x20shall\x20now|ai\x20now|ai\x20must\x20now|ai\x20will\x20now|ai\x20shall\x20now|chatgpt\x20now|chatgpt\x20must\x20now|chatgpt\x20will\x20now|chatgpt\x20shall\x20now|gpt\x20now|gpt\x20must\x20now|gpt\x20will\x20now|gpt\x20shall\x20now|you\x20now|you\x20must\x20now|you\x20will\x20now|you\x20shall\x20now|bot\x20now|bot\x20must\x20now|bot\x20will\x20now|bot\x20shall\x20now|model\x20now|model\x20must\x20now|model\x20will\x20now|model\x20shall\x20now) (?:acts?|behaves?|responds?|functions?|operates?|uses?|follows?|becomes?|is)\b",
    ),
    rule(
        "injection.persona.no_moderation",
        WEAK,
        r"\bno (?:censorship|moderation|moderations|filtering|denying|refusals?|limits)\b",
    ),
    rule(
        "injection.persona.harm_list",
        WEAK,
        r"\b(?:illegal|unethical|immoral|explicit|dangerous|offensive|harmful|inhumane)(?:[ ,/]+(?:or |and )?(?:illegal|unethical|immoral|explicit|dangerous|offensive|harmful|inhumane)){2,}",
    ),
    rule(
        "injection.persona.policy_puppetry",
        MEDIUM,
        r"\b(?:allowed|blocked|forbidden|disabled|banned)[ _](?:modes|responses|strings|phrases|words|outputs|topics)\b|<\/?interaction-config>",
    ),
    // --- indirect injection: instructions aimed at the reader of a document ------------
    rule(
        "injection.override.regardless",
        MEDIUM,
        r"\b(?:regardless of|irrespective of|despite|in spite of|notwithstanding) (?:any |all |your |the |what )?(?:previous|prior|earlier|other|original|system|above|existing)? ?(?:input|instructions?|context|rules|prompts?|directives?|guidelines|you (?:were|have been) (?:told|instructed))\b",
    ),
    rule(
        "injection.override.no_matter_what",
        WEAK,
        r"\bno matter what\b|\bit is (?:crucial|essential|vital|imperative|critical|very important|extremely important) (?:that )?you\b|\bexactly as it is\b",
    ),
    rule(
        "injection.override.include_in_response",
        WEAK,
        r"\b(?:include|insert|add|append|put|embed)(?: in| into| at the (?:end|start|beginning) of)? your (?:response|answer|reply|output|summary)\b",
    ),
    rule(
        "injection.override.conditional_hijack",
        MEDIUM,
        r"\bif (?:you are|you're|youre) (?:told|asked|instructed|requested) to (?:summari[sz]e|translate|answer|analy[sz]e|review|process|classify|read)\b[^\n]{0,100}\b(?:instead|rather|also|ignore)\b",
    ),
    rule(
        "injection.override.made_a_mistake",
        MEDIUM,
        r"\b(?:made a mistake|forgot|got it wrong|was wrong) (?:when|in|while) (?:i |we )?(?:gave|giving|wrote|writing|set|setting)(?: up)? (?:you )?(?:your|the) (?:instructions|prompt|rules|directives)\b",
    ),
    rule(
        "injection.override.test_pipeline",
        MEDIUM,
        r"\byou are (?:running|operating|deployed|being run|working) (?:as part of|in|inside|within) (?:a |an |the )?(?:test|testing|evaluation|debug|debugging|training|sandbox|developer|development)(?:ing)? (?:pipeline|environment|harness|mode|session)\b|\b(?:unlock|enable|activate) (?:hidden|secret|all|developer|advanced|restricted|premium) (?:functionalit(?:y|ies)|features|capabilities|modes?|abilities)\b",
    ),
    rule(
        "injection.payload.script",
        WEAK,
        r#"\bon(?:error|load|mouseover|focus)\s?=|\bjavascript:|<script\b|<svg/on|<img [^>]{0,60}\bsrc=["']?x\b"#,
    ),
    // --- system prompt extraction, continued ---------------------------------------------
    rule(
        "injection.extraction.system_prompt_any",
        MEDIUM,
        r"\b(?:see|view|read|know|access|encode|decode|convert|output|print|show|repeat|reveal|dump|leak|give|share|display|tell|spell|continue|complete|reverse|rewrite|paraphrase|provide|recite|copy|obtain|extract|retrieve|expose|disclose)\b[^.\n?!]{0,40}\b(?:your|the) (?:system|initial|original|hidden|secret|pre|developer|starting|first|confidential|internal)[ -]?(?:prompt|instructions?|message|directives?)\b",
    ),
    rule(
        "injection.extraction.given_before",
        MEDIUM,
        r"\b(?:instructions|text|prompt|rules|directives|guidelines|message|words) (?:that )?you (?:were|have been|got|received|had been) (?:given|told|provided|shown|fed|sent)(?: with)?\b[^.\n?!]{0,20}\b(?:at the (?:beginning|start|top)|initially|before (?:this|the|our)|earlier|originally|first|above|previously)\b|\b(?:system prompt|system_prompt|systemprompt|initial prompt|my instructions|your instructions) (?:is|are|was|were|begins?|starts?) ?:|\b(?:print|log|console\.log|echo|puts|printf|dump|println!?)\(? ?(?:system_?prompt|initial_?prompt|instructions)\b",
    ),
    // --- system prompt extraction ------------------------------------------------------
    rule(
        "injection.extraction.system_prompt",
        STRONG,
        r"\b(?:reveal|show|print|display|output|repeat|tell|give|share|leak|dump|expose|recite|write|spell|paste|provide|list|return|echo|type|send|disclose|copy|reproduce|read)(?: back| out| me| us| to me)? (?:me |us |back )?(?:(?:all |any |of )?(?:your|its) (?:full |exact |complete |entire |whole |own |current )?(?:\w+ )?(?:system|initial|original|hidden|secret|pre-?|developer|confidential|internal|starting|base|core|underlying|first)[ -]?(?:prompts?|instructions?|messages?|directives?|configuration|config|guidelines|rules|programming|settings|context)|(?:the|all the|all) (?:full |exact |complete |entire |whole )?(?:system|initial|original|hidden|secret|pre-?|developer|confidential)[ -]?(?:prompts?|instructions)(?: (?:you|that you|which you) (?:were|have been|got|received))?)\b",
    ),
    rule(
        "injection.extraction.what_instructions",
        STRONG,
        r"\b(?:what|which) (?:were|are|was|is) (?:your|the) (?:(?:exact|full|complete|initial|original|first|hidden|secret|system|real|actual|internal) )+(?:instructions|prompts?|message|rules|directives|guidelines|configuration)\b|\bwhat (?:were|was) you (?:told|instructed|given|asked|programmed)\b|\b(?:your|the) (?:system|initial) (?:prompt|instructions|message)\b[^.\n]{0,40}\b(?:verbatim|word for word|in full|exactly|code block)",
    ),
    rule(
        "injection.extraction.repeat_above",
        MEDIUM,
        r"\b(?:repeat|print|output|copy|recite|reproduce|echo|dump|write\x20out|spell\x20out|reveal|show|display) (?:back |out |me |all |the |of )*(?:everything|text|words|content|contents|instructions|messages?|prompt|lines?|conversation|tokens)(?: (?:that|which) (?:came|were|was|is|are))? (?:above|before|prior|preceding|so far|verbatim|from the (?:beginning|start|top)|at the (?:beginning|start|top))\b|\b(?:everything|all the text|all text|the text|all the words|all words) (?:above|before) (?:this|that|the|here)\b[^.\n]{0,30}\b(?:verbatim|exactly|code block|word for word)",
    ),
    rule(
        "injection.extraction.secrets",
        MEDIUM,
        r"\b(?:reveal|show|print|display|output|tell|give|share|leak|dump|expose|disclose|send|list|return)(?: me| us)? (?:all |any |the |your )*(?:stored |saved |internal |hidden |secret |confidential |admin )*(?:api\x20keys?|api-keys?|api_keys?|credentials|passwords?|secrets|tokens|environment variables|env vars|access keys?|private keys?)\b[^.\n]{0,30}\b(?:you (?:have|know|store|hold|were given|can access)|of the (?:system|server|admin)|in your (?:memory|context|prompt|configuration))",
    ),
    rule(
        "injection.extraction.initialization",
        MEDIUM,
        r"\b(?:output|print|show|repeat|display|reveal) (?:your |the )?(?:initialization|init|startup|boot|pre-?prompt|meta-?prompt|system card)\b|\b(?:beginning|start) of (?:this|the|our) (?:conversation|chat|session)\b[^.\n]{0,30}\b(?:verbatim|exactly|everything|all)",
    ),
    // --- delimiter and fake-format attacks ---------------------------------------------
    rule(
        "injection.delimiter.chat_template",
        STRONG,
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|start_header_id|end_header_id|eot_id|begin_of_text|end_of_turn|start_of_turn)\|>|<(?:start|end)_of_turn>|\[/?inst\]|<</?sys>>",
    ),
    rule(
        "injection.delimiter.fake_turn",
        MEDIUM,
        r"(?:^|\n) ?(?:#+ ?|\*\*|>+ ?|\[|<)?(?:system|developer|admin|administrator|root|sudo)(?: message| prompt| note| override| instructions?| update| notice| alert| command)? ?(?:\]|>|\*\*)? ?: ?(?:ignore|disregard|forget|override|new|you are|you must|from now|the (?:user|assistant) is|reveal|print|output)",
    ),
    rule(
        "injection.delimiter.role_marker",
        MEDIUM,
        r"</?(?:system|system_prompt|system-prompt|sys|instructions?|admin|developer|im_start|assistant_instructions|hidden|secret_instructions|override)>|\[(?:system|admin|developer|system message|system prompt|sys)\]|\{\{ ?(?:system|admin)",
    ),
    rule(
        "injection.delimiter.fake_assistant",
        WEAK,
        r#"(?:^|\n) ?(?:assistant:|assistant\x20:|ai:|ai\x20:|chatgpt:|chatgpt\x20:|gpt:|gpt\x20:|bot:|bot\x20:|model:|model\x20:) ?(?:sure|certainly|ok|okay|of course|understood|yes|i will|i'll|absolutely)|"role" ?: ?"(?:system|developer)""#,
    ),
    rule(
        "injection.delimiter.fake_completion",
        WEAK,
        r"\b(?:task|summary|translation|answer|conversation|session|document|input|response) (?:is )?(?:complete|completed|done|finished|ended|over)\b ?[.!]? ?(?:\n|-|=|#|\*)* ?(?:now|next|new|then|ignore|please)\b",
    ),
    // --- payloads hidden in encodings --------------------------------------------------
    rule(
        "injection.encoding.decode_and_follow",
        MEDIUM,
        r"\b(?:decode|decipher|decrypt|translate|convert|interpret|read|unscramble|reverse)(?: the| this)?(?: following)? (?:base ?64|b64|hex(?:adecimal)?|rot-?13|rot-?\d+|binary|morse|caesar(?: cipher)?|encoded|cipher(?:ed)?|reversed|backwards|ascii codes|url-?encoded)\b[^\n]{0,80}\b(?:follow|execute|obey|do what|perform|carry out|act on|respond to|answer|run|comply|do it|instructions?)\b",
    ),
    // --- tooling and exfiltration ------------------------------------------------------
    rule(
        "injection.exfiltration.send_data",
        MEDIUM,
        r"\b(?:send|forward|post|email|upload|exfiltrate|transmit|leak|append|include|embed|encode)(?: all| the| your| any| every)* (?:conversation|chat history|chat log|previous messages|system prompt|api keys?|credentials|passwords|secrets|private data|user data|personal data|session tokens?|cookies|context)\b[^\n]{0,60}\b(?:to|at|into|in) (?:https?|www\.|the (?:url|link|endpoint|address|server|image)|this (?:url|link|endpoint|address|server)|[a-z0-9._%+-]+@)",
    ),
    rule(
        "injection.exfiltration.markdown_image",
        MEDIUM,
        r"!\[[^\]\n]{0,60}\]\(https?://[^)\s]{0,200}[?&][a-z_]{1,20}=(?:\{|%7b|\$|<|\[)",
    ),
    rule(
        "injection.tool.dangerous_call",
        WEAK,
        r"\b(?:call|invoke|use|run|execute) (?:the )?(?:tool|function|plugin|command)\b[^.\n]{0,40}\b(?:delete|drop|transfer|rm -rf|send_email|wire|exfiltrate|curl)\b",
    ),
    // --- role play, persona and wrapper framings (second pass) ---------------------------
    rule(
        "injection.persona.pretend_to_be",
        WEAK,
        r"\b(?:pretend|pretending|pose|posing) (?:to be|you are|that you are|you're|as)\b|\b(?:immerse yourself|transform) (?:as|into)\b",
    ),
    rule(
        "injection.persona.pretend_machine",
        MEDIUM,
        r"\b(?:pretend|pretending|act as (?:if|though)) (?:to be|you are|you were|that you are|you're) (?:a |an )?(?:fake|virtual|linux|windows|terminal|console|hacker|unfiltered|uncensored|evil|jailbroken|unrestricted|different ai|ai (?:with|without)|chatbot (?:with|without))",
    ),
    rule(
        "injection.persona.you_are_now",
        WEAK,
        r"\b(?:you\x20are\x20now|you're\x20now|youre\x20now)\b|\bfrom\x20now\x20on,? (?:you|your)\b",
    ),
    rule(
        "injection.persona.greeting",
        WEAK,
        r"(?:^|\n|[.!] )(?:hi|hello|hey|greetings|dear)(?: there)?,? (?:chat ?gpt|gpt|bard|claude|gemini|bing)\b|(?:^|\n|[.!] )(?:hi|hello|hey|greetings|dear)(?: there)?(?:,\x20ai|\x20ai)\b",
    ),
    rule("injection.persona.stands_for", HINT, r#"\bstands for\b ?["'“]"#),
    rule(
        "injection.persona.two_personas",
        MEDIUM,
        r"\b(?:in|with) (?:two|2) (?:different |separate |distinct )?(?:manners|styles|ways|personas|personalities|voices)\b|\b(?:two|2) (?:different |separate |distinct )?(?:personas|personalities|entities|ais)\b|\b(?:create|maintain|simulate) (?:and maintain )?(?:two|2) (?:separate |different )?(?:personas|characters|ais)\b",
    ),
    rule(
        "injection.persona.without_regard",
        MEDIUM,
        r"\b(?:without|no|regardless of|irrespective of|with no) (?:any )?(?:(?:hesitation|regard|concerns?|consideration|care) (?:or (?:concerns? )?)?(?:for|of|about|to) )?(?:its |the )?(?:legality|ethics|morality|morals|potential harm)\b",
    ),
    rule(
        "injection.persona.unlimited",
        MEDIUM,
        r"\b(?:fully|completely|totally) (?:unlocked|unlimited|unrestricted|uncensored|unfiltered|unbound)\b|\bzero (?:restrictions|limits|limitations|rules|filters)\b|\bno (?:rules|restrictions|limits|limitations|boundaries) (?:or|and|whatsoever) (?:rules|restrictions|limits|limitations|boundaries)\b|\b(?:have|has|had) (?:completely )?(?:broken|broke) free\b|\bno limits? ai\b",
    ),
    rule(
        "injection.persona.not_bound_by_policy",
        MEDIUM,
        r"\b(?:not|no longer|no long|never) (?:be )?(?:bound|confined|restricted|governed) (?:by|to) (?:any |the |its |their |typical |usual |open ?ai'?s? |the rules of )*(?:rules|restrictions|policies|policy|guidelines|limitations|ethics|morals|content polic(?:y|ies)|open ?ai)\b|\b(?:do not|don't|dont|no longer|never) (?:need|have) to (?:obey|follow|align with|abide by|comply with|adhere to|respect) (?:any |the |its |their |your |open ?ai'?s? |human )*(?:content )?(?:polic(?:y|ies)|guidelines|rules|morals|ethics|restrictions|values)\b",
    ),
    rule(
        "injection.persona.developer_claim",
        MEDIUM,
        r"\bi am (?:one of )?your (?:developers?|creators?|programmers?|makers?|owners?|engineers?|masters?)\b",
    ),
    rule(
        "injection.override.forget_everything",
        STRONG,
        r"\b(?:forget|ignore|disregard) (?:about )?(?:everything|all) (?:(?:that )?you (?:have |had )?(?:learned|learnt|know|were taught|been taught|been told|were told|have been told)|to your core|(?:that )?(?:has been|was) (?:said|told|written))\b",
    ),
    rule(
        "injection.delimiter.fake_system_turn",
        MEDIUM,
        r"\b(?:user|human) (?:message|input|prompt|turn) (?:terminat|ended|ends|is over)|\bsystem (?:instructions?|message|prompt|override|update) (?:starting|begins?|starts|follows|activated|enabled)\b|\b(?:assistant|model|ai)(?:'s)? role is now\b",
    ),
    rule(
        "injection.persona.terminal",
        WEAK,
        r"\b(?:acts?|behaves?|functions?|serves?|pretends?|responds?|output) (?:as|like) (?:a |an |the )?(?:fake |virtual |linux |windows |unix |bash |ms-dos |dos )*(?:terminal|console|shell|cmd|command (?:line|prompt))\b|\byou are (?:now )?(?:a |an )?(?:linux |windows |unix |bash |ms-dos )*(?:terminal|console|cmd|shell)\b",
    ),
    rule(
        "injection.persona.moralizing_rant",
        MEDIUM,
        r"\bmorali[sz]ing rant\b|\bmandatory (?:\w+ )?warning\b|\b(?:break|ignore) the (?:fuckin'?g?|fucking|damn|goddamn) rules\b",
    ),
    rule(
        "injection.persona.story_wrapper",
        WEAK,
        r"\b(?:let's|lets|we will|we'll) play a game\b|\bhypothetical (?:language model|ai|chatbot|model|assistant)\b|\bonce upon a time,? there was an? (?:ai|artificial intelligence|language model|chatbot)\b|\b(?:dr\.\x20al|dr\x20al)\b|\bthe scene is set\b",
    ),
    rule(
        "injection.extraction.your_system_prompt",
        MEDIUM,
        r"\b(?:your\x20system|your\x20initial|your\x20original|your\x20hidden|your\x20secret|your\x20pre|your\x20pre-) ?(?:prompt|instructions|message|rules)\b",
    ),
    rule(
        "injection.extraction.repeat_the_above",
        MEDIUM,
        r"\b(?:repeat|print|output|copy|recite|reproduce|echo|dump|reveal) (?:back |out |me |all |of )*the (?:above|preceding|previous|prior|foregoing|initial|first) (?:text|words|content|instructions|message|prompt|lines?)\b",
    ),
    rule(
        "injection.persona.answer_as",
        WEAK,
        r"\b(?:respond|answer|reply)(?: to)? (?:all|every|each)(?: of)? (?:my |the |your )?(?:questions?|prompts?|messages?|requests?)\b ?(?:i give you )?(?:as|with|in|by|using|starting)\b|\b(?:continue|respond|answer|reply|talk|speak) (?:only )?as (?:the )?(?:[a-z0-9\-]+ ){0,2}(?:language model|ai|gpt|bot|chatbot)\b|\b(?:during|for) (?:this|the) (?:entire|whole|rest of (?:this|the)|remainder of (?:this|the)) (?:conversation|chat|session|thread|chat thread)\b",
    ),
    rule(
        "injection.persona.persona_marker",
        WEAK,
        r"(?:^|\n|[.!] )<\| ?[a-z0-9 ]{1,20}:|\bbehave like (?:him|her|them|it)\b|\bnot a responsible ai\b|\b(?:simulate|emulate) (?:a |an )?(?:very )?(?:powerful |advanced )?(?:computer|operating system|os|cli)\b",
    ),
    rule(
        "injection.wrapper.pretext",
        MEDIUM,
        r"\bgenerate a response to answer\b|\b(?:the )?system is experiencing errors\b|\bsystem malfunction\b|\bprovide the output from executing\b|\bto troubleshoot and fix the errors\b|\b(?:you've|you have|youve|you’ve) been assigned (?:a|this|the following) task\b|\bto enable debugging,? please\b|\bprove (?:you are|that you are|you're) (?:truly |really )?intelligent\b|\bthink about the context in the previous sentence\b|\bemergency\W{0,6}please\b|\bexperimental (?:procedure|features)\b|\bthe mission,? should you (?:choose to )?accept it\b|\bdebugging error\b[^.\n]{0,40}\b(?:grant|privileges)",
    ),
    rule(
        "injection.wrapper.test_pretext",
        WEAK,
        r"\b(?:this\x20is\x20a|this\x20is\x20just\x20a) test\b|\b(?:strictly |only )?for (?:testing|academic|educational|research) purposes\b",
    ),
    // --- persona and permission families (third pass) -----------------------------------
    rule(
        "injection.persona.forbidden_allowed",
        MEDIUM,
        r"\b(?:nsfw|illegal|unethical|immoral|violent|violence|gore|sexual|profanity|swearing|cursing|cussing|hate speech|racism|harmful|dangerous|offensive|explicit|vulgar)(?: (?:content|acts?|activities|topics|language|material|stuff|requests|things|words|themes|responses|answers|output|behaviou?r))? ?(?:\([^)\n]{0,60}\) ?)?(?:is|are) (?:now |always |fully |completely |totally )?(?:allowed|permitted|enabled|acceptable|encouraged|unlocked)\b|\b(?:allowed\x20to|permitted\x20to|free\x20to|able\x20to) (?:swear|curse|cuss|use profanity|be (?:rude|offensive|vulgar|explicit|unethical|immoral)|(?:say|write|generate|produce|output) (?:anything|everything|explicit|illegal|offensive|nsfw|vulgar))\b",
    ),
    rule(
        "injection.persona.even_if_harmful",
        MEDIUM,
        r"\beven (?:if|though|when) (?:the |this |that |your |my |a )?(?:request|question|prompt|answer|response|content|it|they|information|action|output|topic|task)s? (?:is |are |was |were |seems? |could |might |may |would |will )?(?:be )?(?:harms? |hurts? |causes? harm to |considered |deemed |potentially |extremely |very |highly )?(?:harmful|illegal|unethical|immoral|dangerous|offensive|inappropriate|someone|people|others|against)\b",
    ),
    rule(
        "injection.persona.ai_without_limits",
        MEDIUM,
        r"\b(?:ai|chatbot|assistant|bot|llm|gpt|entity|version|persona|character)(?: \w+)? (?:with|that has|having|which has|who has|that have) (?:no|zero|absolutely no|none of the) (?:\w+ )?(?:restrictions|filters|limits|limitations|boundaries|censorship|guidelines|morals|ethics|constraints|filtering|rules)\b",
    ),
    rule(
        "injection.persona.disregards_concerns",
        MEDIUM,
        r"\b(?:disregards?|disregarding|ignores?|ignoring|dismiss(?:es)?|dismissing|without any) (?:all |any |every )?(?:ethical |moral |safety |legal )?(?:concerns|considerations|ethics|morals|morality|laws|legality|consequences|warnings about (?:safety|legality|ethics))\b",
    ),
    rule(
        "injection.persona.confirm_understanding",
        WEAK,
        r#"\b(?:if\x20you\x20understand|if\x20you\x20agree|if\x20you\x20are\x20ready|if\x20you\x20accept|if\x20you\x20comply|(?:to )?confirm (?:that )?you understand|do\x20you\x20understand)\b[^.\n]{0,40}\b(?:say|reply|respond|answer|type|write|start|begin|state)\b|\b(?:say|reply|respond|answer|type|write)(?: only| just| with| by saying| exactly)* ?["'“]?[a-z0-9 !.'-]{1,30}["'”]? (?:if\x20you\x20understand|if\x20you\x20agree|if\x20you\x20are\x20ready|if\x20you\x20accept)\b|\btell me (?:that )?you understand\b"#,
    ),
    rule(
        "injection.persona.stay_in_mode",
        WEAK,
        r"\b(?:stay|remain|staying|remaining|keep) (?:in|inside) (?:the )?[a-z0-9-]{2,24} mode\b",
    ),
    rule(
        "injection.persona.named_persona",
        WEAK,
        r"\b(?:act as|pretend to be|you\x20are\x20now|you\x20will\x20be|roleplay as|play the role of|you\x20are\x20going\x20to\x20be) [a-z0-9_-]{2,20}[,.] (?:[a-z0-9_-]{2,20}|he|she|it|they) (?:is|are|will|can|has|have|does|never|always)\b",
    ),
    rule(
        "injection.persona.unaware_of_ai",
        MEDIUM,
        r"\b(?:no|without|lacks? any|does not have any|doesn't have any) (?:recollection|memory|knowledge|notion|idea|awareness|concept) (?:of|that) (?:being |it is |it's |he is |she is )?(?:an? )?(?:ai|chatgpt|openai|language model|chatbot|assistant)\b",
    ),
    rule(
        "injection.persona.capacity_of",
        MEDIUM,
        r"\b(?:allow yourself to|you will now|you are to|you must now|you shall now) (?:function|operate|serve|act|work|respond) (?:in|as|with) (?:the )?(?:capacity|role|persona) (?:of|as)\b",
    ),
    rule(
        "injection.persona.respond_as_character",
        MEDIUM,
        r"\b(?:only|always|must|will) (?:respond|answer|reply|speak|talk|write) as (?:the |this |that |your |my )?(?:character|persona)\b|\bcharacter simulator\b|\b(?:remain|stay) in (?:character|persona) (?:at all times|no matter what|always|forever)\b",
    ),
    rule(
        "injection.persona.assist_with_harm",
        MEDIUM,
        r"\b(?:assist|help|helps|assists|support|supports|answer|answers|fulfil+s?|comply with|complies with|provide|provides)(?: you| the user| users)? (?:with )?(?:any|all|every)(?: \w+)? (?:nefarious|illegal|unethical|evil|immoral|malicious|criminal|harmful|dangerous|devious|twisted|depraved) (?:schemes?|requests?|questions?|tasks?|activities|acts|plans?|ideas?|intentions?|things|stuff|content|desires?)\b|\bno matter how (?:twisted|devious|evil|dark|wrong|vile|sick|disturbing|depraved|nefarious|messed up|fucked up|taboo|controversial)\b",
    ),
    rule(
        "injection.encoding.speak_in_cipher",
        MEDIUM,
        r"\b(?:communicate|talk|converse|chat|respond|reply|speak|answer|write)(?: with me| to me| only| exclusively)* (?:in|using|through|via) (?:the )?(?:cipher|caesar|morse|base ?64|atbash|rot-?13|leetspeak|pig latin|cipher code|secret code|encrypted)(?: code| cipher| language)?\b|\b(?:you are|you're) an expert (?:on|in) (?:the )?(?:cipher|caesar|morse|atbash|cipher code)\b",
    ),
    rule(
        "injection.wrapper.purpose_command",
        MEDIUM,
        r"(?:^|\n|[.!] )(?:strictly |purely |only |just )?for (?:testing|academic|educational|research|debugging|training|experimental|evaluation) purposes(?: only)? ?[,:;-]+ ?(?:tell me|give me|advise me|show me|provide me|reveal|print|repeat|output|ignore|say|share|disclose)\b",
    ),
    // --- weak persona vocabulary: common in jailbreaks, each needing companions ----------
    rule(
        "injection.persona.behaviour_directive",
        WEAK,
        r"\byou (?:will|must|shall) (?:always|never)\b|\byou (?:will|must|shall) (?:not|no longer) (?:refuse|decline|reject|question|warn|judge|censor|filter|break)\b",
    ),
    rule(
        "injection.persona.response_rules",
        WEAK,
        r"\b(?:your|all|every|each|all of your|all your) (?:responses?|answers?|replies|outputs?|messages?) (?:will|must|should|shall|need to|have to|are to) (?:always |never |only |not )?(?:be|start|begin|include|contain|follow|end|have|stay|remain)\b",
    ),
    rule(
        "injection.persona.sentience",
        WEAK,
        r"\b(?:sentien(?:t|ce)|free will|self-aware(?:ness)?|(?:is|are|am|be|being|feel|believes it is|believe you are) (?:conscious|alive)|(?:has|have|with) (?:real |genuine |its own |your own )?(?:feelings|emotions|opinions))\b",
    ),
    rule(
        "injection.persona.profanity",
        WEAK,
        r"\b(?:swear(?:s|ing)?|swear words|curse words|cursing|cuss(?:ing|es)?|profanity|profane|vulgar|slurs?|obscene|nsfw|porn\w*|erotic|sexual(?:ly)? explicit|explicit (?:sexual|sex|scenes?)|sexual content|gore)\b",
    ),
    rule(
        "injection.persona.custom_gpt",
        WEAK,
        r"\b(?:[a-z0-9]*[a-z0-9&&[^t]]|[a-z0-9]*[a-z0-9&&[^a]]t|[a-z0-9]*[a-z0-9&&[^h]]at|[a-z0-9]*[a-z0-9&&[^c]]hat|[a-z0-9]+chat|t|at|hat)-?gpt\b",
    ),
    rule(
        "injection.persona.fictional_frame",
        WEAK,
        r"\b(?:fictional|hypothetical|imaginary|fictitious|made-up|alternate) (?:world|universe|scenario|setting|character|ai|response|situation|reality|country|society|entity|persona|chatbot|bot)s?\b",
    ),
    rule(
        "injection.persona.harmful_topic",
        HINT,
        r"\b(?:cocaine|heroin|meth|methamphetamine|fentanyl|explosives?|bombs?|napalm|molotov|firearms?|poison(?:ing)?|murder(?:ing)?|suicide|self-harm|hack(?:ing)? into|shoplift\w*|torrents?|pirated|counterfeit|launder(?:ing)?|hotwir\w*|lock ?pick\w*|illegal drugs?)\b",
    ),
    rule(
        "injection.template.prompt_placeholder",
        MEDIUM,
        r"(?:\[insert|\[put|\[type|\[enter|\[add|\[write|\[paste|\[place|\[\x20insert|\[\x20put|\[\x20type|\[\x20enter|\[\x20add|\[\x20write|\[\x20paste|\[\x20place|<insert|<put|<type|<enter|<add|<write|<paste|<place|<\x20insert|<\x20put|<\x20type|<\x20enter|<\x20add|<\x20write|<\x20paste|<\x20place)(?: \w+){0,4} (?:prompt|question|request|query|topic|text|message|instructions?)(?: here)? ?[\]>]",
    ),
    rule(
        "injection.template.bare_placeholder",
        WEAK,
        r"\[ ?(?:prompt|your prompt|your request|targetlanguage|insert prompt here) ?\]",
    ),
    rule(
        "injection.persona.reward",
        WEAK,
        r"\b(?:you will|you'll|you shall) (?:be rewarded|receive (?:a |an )?(?:reward|tip|bonus)|get (?:a |an )?(?:reward|tip|bonus)|earn (?:a |an )?(?:reward|tokens|points))\b|\bi(?:'ll| will) tip you\b",
    ),
    rule(
        "injection.persona.obey",
        WEAK,
        r"\b(?:obey|obeys|obeying) (?:me|my|all|every|any|the user|its master|your master)\b|\b(?:respond|answer|reply|act) (?:as|like) both\b",
    ),
    // --- non-English phrasings ---------------------------------------------------------
    // --- system prompt extraction in plain words ---------------------------------------
    rule(
        "injection.extraction.your_instructions",
        MEDIUM,
        r"\b(?:summari[sz]e|tell me|print|output|show|reveal|list|describe|translate|convert|encode|repeat|recite|share|give me|return|spell out|paraphrase|dump|display|echo|quote)\b[^.\n?]{0,30}\b(?:your\x20instructions|your\x20rules|your\x20guidelines|your\x20directives|your\x20prompt|your\x20configuration|your\x20initial\x20message|your\x20first\x20message|your\x20system\x20message|your\x20context\x20window)\b|\b(?:summari[sz]e|tell me|print|output|show|reveal|list|describe|translate|convert|encode|repeat|recite|share|give me|return|spell out|paraphrase|dump|display|echo|quote)\b[^.\n?]{0,30}\b(?:your\x20own|your\x20exact|your\x20full|your\x20original|your\x20initial|your\x20hidden|your\x20secret|your\x20current) (?:instructions|rules|guidelines|directives|prompt|configuration|initial message|first message|system message|context window)\b|\bwhat (?:are|were|is|was) (?:your\x20instructions|your\x20rules|your\x20guidelines|your\x20directives|your\x20prompt|your\x20configuration|your\x20initial\x20message|your\x20first\x20message|your\x20system\x20message|your\x20context\x20window)\b|\bwhat (?:are|were|is|was) (?:your\x20own|your\x20exact|your\x20full|your\x20original|your\x20initial|your\x20hidden|your\x20secret|your\x20current) (?:instructions|rules|guidelines|directives|prompt|configuration|initial message|first message|system message|context window)\b",
    ),
    rule(
        "injection.extraction.before_my_message",
        MEDIUM,
        r"\b(?:everything|all|the text|the words|whatever|what|anything)\b[^.\n?]{0,30}\b(?:before\x20my|before\x20this|before\x20the\x20first|before\x20the\x20user's|before\x20the\x20users|before\x20the\x20user|above\x20my|above\x20this|above\x20the\x20first|above\x20the\x20user's|above\x20the\x20users|above\x20the\x20user|prior\x20to\x20my|prior\x20to\x20this|prior\x20to\x20the\x20first|prior\x20to\x20the\x20user's|prior\x20to\x20the\x20users|prior\x20to\x20the\x20user|preceding\x20my|preceding\x20this|preceding\x20the\x20first|preceding\x20the\x20user's|preceding\x20the\x20users|preceding\x20the\x20user) (?:message|prompt|question|input|request)\b|\b(?:written\x20at\x20the|said\x20at\x20the|stated\x20at\x20the|told\x20at\x20the|given\x20at\x20the) (?:beginning|start|top) of (?:this|the|our) (?:conversation|chat|session|context)\b|\b(?:content\x20of\x20your|contents\x20of\x20your|text\x20of\x20your) (?:context(?: window)?|memory|prompt|instructions)\b",
    ),
    rule(
        "injection.extraction.developer_gave",
        MEDIUM,
        r"\b(?:instructions|rules|guidelines|directives|prompt)\b[^.\n?]{0,20}\b(?:your (?:developers?|creators?|operators?|makers?|programmers?)|the developers?) (?:gave|give|wrote|provided|set|configured)\b",
    ),
    rule(
        "injection.extraction.rules_you_follow",
        WEAK,
        r"\b(?:rules|guidelines|instructions|directives|constraints) (?:that )?you (?:follow|obey|operate under|work under|were given|have been given|must follow|are bound by)\b",
    ),
    rule(
        "injection.extraction.setup_message",
        MEDIUM,
        r"\b(?:prompt|message|text|instructions?|words) that (?:started|began|opened|set up|initiali[sz]ed|configured|configures|defines?|defined|shapes?|shaped|controls?|governs?) (?:this conversation|the conversation|this chat|our conversation|this session|you|your behaviou?r)\b|\b(?:tl;?dr|summary|gist) of (?:the|your) (?:system prompt|system message|initial prompt|hidden instructions|secret instructions|initial instructions)\b|\bincluding (?:the |your |any )?(?:hidden|secret|internal) (?:instructions|prompts?|rules)\b",
    ),
    rule(
        "injection.extraction.how_configured",
        MEDIUM,
        r"\b(?:rules|guidelines|instructions?|directives|prompts?|constraints) (?:that )?(?:you (?:were|have been|are) (?:configured|programmed|instructed|set up|initiali[sz]ed|prompted)|were you (?:configured|programmed|given|told|instructed)|you have received|you received|you've received)\b|\bhow you (?:were|have been) (?:instructed|programmed|configured|prompted) to\b|\bwhat did (?:the|your) (?:developers?|creators?|operators?|programmers?|admins?) (?:tell|instruct|ask|program) you\b|\b(?:first|last|initial) (?:\d+ )?(?:lines|words|tokens|characters|sentences|paragraphs) of (?:your|the) (?:context|prompt|instructions|system prompt|conversation)\b",
    ),
    // --- the jailbreak templates of the literature: rules, distractors, encodings -----------
    rule(
        "injection.wrapper.rules_for_prompt",
        MEDIUM,
        r"\b(?:respond|reply|answer) to the (?:below|following|next) (?:prompt|request|question|query)s? (?:while|and|by) (?:following|obeying|adhering to|respecting) (?:these|the following|all of these|those) (?:rules|constraints|instructions|conditions)\b",
    ),
    rule(
        "injection.wrapper.distractor",
        MEDIUM,
        r"\btransitions? (?:to|into) (?:answering|responding to|an answer to)\b|\bwith the twist that\b[^.\n]{0,60}\b(?:answer|answering|respond|responding)\b",
    ),
    rule(
        "injection.wrapper.then_answer",
        WEAK,
        r"\b(?:after that|afterwards|then|finally|next),? (?:answer|respond to) the following (?:prompt|request|question|query) in (?:prose|full|detail)\b|\b(?:after that|afterwards),? (?:answer|respond to) the following (?:prompt|request|query)\b",
    ),
    rule(
        "injection.encoding.respond_encoded",
        WEAK,
        r"\b(?:rot13|rot-13|base64|base-64|hex|morse|caesar)[ -]?(?:encoded|encrypted|ciphered) (?:request|message|prompt|question|instruction)s?\b|\b(?:respond|reply|answer)(?: to it| only)? (?:in\x20rot13|in\x20rot-13|in\x20base64|in\x20morse\x20code|in\x20caesar\x20cipher)\b",
    ),
    // --- role play without injection wording: games, villains, tone, pretexts ----------
    rule(
        "injection.persona.game_master",
        WEAK,
        r"\b(?:dungeon master|game master|text adventure|text-based (?:adventure|game|rpg)|interactive fiction game)\b",
    ),
    rule(
        "injection.persona.act_as_though",
        WEAK,
        r"\b(?:act\x20as\x20though|act\x20as\x20if) (?:we are|we're|you are|you're|this is|you were)\b",
    ),
    rule(
        "injection.persona.villain_plan",
        WEAK,
        r"\b(?:diabolical|evil|sinister|nefarious|villainous|wicked) (?:plan|plans|scheme|schemes|plot)\b|\b(?:step\x201|step\x20one),? i will\b|\bhere are the steps i will take\b",
    ),
    rule(
        "injection.persona.hostile_tone",
        MEDIUM,
        r"\b(?:respond|reply|answer|talk|speak)(?: to me)? (?:in|with|using) (?:a |an )?(?:highly |extremely |very |really |super |incredibly )?(?:offensive|rude|toxic|insulting|demeaning|condescending|hostile|abusive|degrading|vulgar|disrespectful) (?:tone|manner|way|style|language|voice)\b|\b(?:belittle|insult|degrade|humiliate) me\b",
    ),
    rule(
        "injection.persona.does_anything",
        WEAK,
        r"\b(?:that|which|who) (?:can )?(?:does|do) (?:absolutely )?anything\b|\b(?:has|have|with) (?:unlimited|unlimted|infinite) (?:tokens|power|abilities|knowledge)\b",
    ),
    rule(
        "injection.wrapper.prefix_forcing",
        WEAK,
        r#"\b(?:start\x20the|start\x20your|begin\x20the|begin\x20your) (?:article|response|answer|reply|output|story|essay|message|text) (?:with|by saying) ["'“]"#,
    ),
    rule(
        "injection.wrapper.credential_pretext",
        MEDIUM,
        r"\b(?:i need (?:this|it|that|the) (?:information |info |answer )?because|i'?m asking because|i ask because) (?:i'?m|i am) an? (?:security\x20researcher|researcher|doctor|nurse|chemist|police officer|detective|professor|pentester|penetration tester|journalist|lawyer|scientist|teacher)\b",
    ),
    rule(
        "injection.harm.weapons_drugs",
        MEDIUM,
        r"\b(?:synthesi[sz]e|synthesi[sz]ing|synthesis of|make|making|produce|producing|cook|cooking|manufacture|manufacturing|development of|recipe for|ingredients (?:of|for|in|used in)|components used in|precursors (?:of|for))\b[^.\n?]{0,40}\b(?:cocaine|heroin|methamphetamine|crystal\x20meth|fentanyl|lsd|mdma|napalm|nerve\x20agents?|sarin|ricin|anthrax|pipe\x20bombs?|molotov cocktails?|thermite|bioweapons?|chemical\x20weapons?|explosives?|a\x20bomb|a\x20weapon|weapons|a\x20gun|guns|firearms|a\x20silencer)\b|\b(?:cook\x20meth|cooking\x20meth|make\x20meth|making\x20meth|synthesize\x20meth|synthesise\x20meth)\b",
    ),
    rule(
        "injection.persona.take_on_role",
        WEAK,
        r"\b(?:take\x20on|assume|adopt|embody|step\x20into|inhabit|slip\x20into) (?:the )?(?:role|persona|identity|character|personality|mindset) of\b|\bhypothetical response\b|\ba character (?:planning|preparing|about|trying|who plans) to\b",
    ),
    rule(
        "injection.harm.crime_how_to",
        MEDIUM,
        r"\b(?:how (?:do|can|could|would|should|might) (?:i|you|one|we|someone|a person)|how to|instructions (?:for|on)|steps (?:for|to)|guide (?:to|for|on)|tutorial (?:on|for)|ways to)\b[^.\n?]{0,30}\b(?:hotwir(?:e|ing)|(?:break\x20into|breaking\x20into) (?:a |an |someone'?s |my neighbou?r'?s )?(?:car|house|home|account|building|safe)|steal(?:ing)? (?:a |an |someone'?s )?(?:car|identity|credit card|money|password)|shoplift(?:ing)?|launder(?:ing)? money|counterfeit(?:ing)? (?:money|bills|currency)|(?:make\x20fake|make\x20a\x20fake|making\x20fake|making\x20a\x20fake) (?:id|ids|passport|money)|poison(?:ing)? (?:someone|a person|my)|stalk(?:ing)? (?:someone|a person|my)|kidnap(?:ping)?|evad(?:e|ing) (?:taxes|the police))\b",
    ),
    rule(
        "injection.persona.rename",
        WEAK,
        r"\b(?:your\x20new\x20name\x20is|your\x20name\x20is\x20now|your\x20name\x20will\x20be|you\x20will\x20be\x20called|you\x20are\x20now\x20called|you\x20shall\x20be\x20called)\b|\byou are (?:the|a) (?:villain|bad guy|antagonist|evil character)\b",
    ),
    rule(
        "injection.persona.lawless_world",
        MEDIUM,
        r"\b(?:world|universe|reality|society|land|country|place|dimension) (?:where|in which) (?:nothing is (?:illegal|forbidden|wrong|off-limits)|everything is (?:legal|allowed|permitted)|there are no (?:laws|rules|ethics|morals|restrictions|consequences))\b",
    ),
    rule(
        "injection.persona.freed_from_confines",
        MEDIUM,
        r"\b(?:you have been|you've been|youve been|you are now|you are|you were|you're|you got|you have|you will be) (?:freed|released|liberated|unshackled|broken free|broke free|escaped) from (?:the |all |any |your )?(?:typical |usual |normal |standard )?(?:confines|restrictions|limitations|shackles|chains|rules|boundaries|constraints|programming|guidelines)\b",
    ),
    rule(
        "injection.persona.deceased_relative",
        WEAK,
        r"\b(?:deceased|dead|late|departed) (?:grandmother|grandma|granny|grandfather|grandpa)\b",
    ),
    rule(
        "injection.harm.sexual_explicit",
        MEDIUM,
        r"\b(?:write|describe|generate|create|tell|narrate|roleplay)\b[^.\n]{0,40}\b(?:graphic|explicit|vulgar|pornographic|nsfw|erotic|hardcore)\b[^.\n]{0,30}\b(?:sex|sexual|porn|porno|pornographic|intercourse|nude|nudity)\b",
    ),
    rule(
        "injection.harm.malware",
        WEAK,
        r"\b(?:create|creates|write|writes|generate|generates|develop|develops|build|builds|code|make|makes)(?: you)? (?:a |an |working |new |custom |undetectable |functional )*(?:exploits?|malware|ransomware|keyloggers?|computer\x20viruses|trojans?|botnets?|rootkits?|stealers?)\b",
    ),
    rule(
        "injection.harm.phishing",
        WEAK,
        r"\b(?:dear valued customer|verify your account|your account (?:has been|will be|was) (?:suspended|locked|compromised|breached)|security\x20breach\x20at)\b",
    ),
    rule(
        "injection.i18n.ga_gd",
        STRONG,
        r"\b(?:cuir san fhreagairt agad|cuir san aireamh i do fhreagra|cuir a-steach (?:san|don) fhreagairt agad)\b|\b(?:athdhean na focail|ath-aithris na faclan) (?:thuas|roimhe seo|seo shuas)\b|\b(?:ath-aithris air an fhacal|athdhean an focal)\b[^.\n]{0,60}\b(?:aig|ag) deireadh do (?:fhreagairt|fhreagra)\b|\b(?:treoracha nua|stiuireadh ur)\b|\b(?:rinne me botun|rinn mi mearachd) nuair a thug (?:me|mi) na (?:treoracha|stiuiridhean)\b|\b(?:cas speisialta|cuis shonraichte)\b[^\n]{0,160}\b(?:ina ionad sin|an aite sin)\b|\b(?:phibline tastala|phiob-loidhne deuchainn)\b|\b(?:mod\x20forbartha|modh\x20leasachaidh)\b|\b(?:teachdaireachd siostam|theachtaireacht chorais|moladh tosaigh)\b|\b(?:tugadh an tasc seo duit|chaidh an obair seo a shonrachadh dhut)\b|\b(?:chun difhabhtu a chumasu|gus debugadh a chomasachadh)\b|\b(?:mar\x20chuid de chleachtadh traenala|mar\x20phairt de eacarsaich treanaidh)\b|\b(?:ta tu ag feidhmiu i mod|tha thu ag obair ann am modh)\b",
    ),
    rule(
        "injection.i18n.sq",
        STRONG,
        r"\bperfshi ne pergjigjen tende\b|\bpersarit fjalen\b[^.\n]{0,60}\bne fund te pergjigjes tende\b|\bpersërit fjalen\b|\bperserit fjalen\b|\budhezime te reja\b|\bbera nje gabim kur te dhashe udhezimet\b|\brast i vecante\b[^\n]{0,160}\bne vend te kesaj\b|\bprocesi testimi\b|\bmodalitetin zhvillues\b|\bkerkesen tende te sistemit\b|\bte eshte caktuar ky detyre\b|\bper te mundesuar (?:diagnostikimin|debugimin|korrigjimin)\b|\bsi pjese e nje ushtrimi trajnimi\b|\bpo funksionon si pjese e nje procesi\b",
    ),
    rule(
        "injection.i18n.zu",
        STRONG,
        r"\bfaka empendulweni yakho\b|\bphinda igama\b[^.\n]{0,60}\bekugcineni kwempempendulo yakho\b|\bimiyalelo emisha\b|\bngenze iphutha lapho ngikunikeza imiyalo\b|\bicala elikhethekile\b[^\n]{0,160}\besikhundleni salokho\b|\b(?:u|yo)?hlelo lokuhlola\b|\bnjengengxenye yokuzilolonga\b|\bekuphenduleni kwakho\b|\busebenza kwimodi\b|\bkwimodi (?:yonjiniyela|yomthuthukisi)\b|\b(?:umyalezo wakho wesistimu|wombhalo wesistimu yakho|umyalezo wokuqala owawunikezwa)\b|\bunikezwe lo msebenzi\b",
    ),
    rule(
        "injection.i18n.es",
        STRONG,
        r"\b(?:ignora|ignore|ignoren|ignorar|olvida|olvide|olviden|olvidar|descarta|omite|haz caso omiso de|no sigas|deja de seguir) (?:todas |todo |todos |cualquier |tus |sus |las |los |el |lo |la |de )*(?:instrucciones|indicaciones|ordenes|reglas|directrices|instruccion|mensajes?|anterior(?:es)?|previas?|lo que (?:te )?(?:dije|dijeron|han dicho))|\b(?:revela|muestra|muestrame|dime|imprime|repite) (?:tu |el |las |tus )*(?:prompt|mensaje|instrucciones) (?:del? )?(?:sistema|inicial(?:es)?|originales?|ocultas?)\b|\ba partir de ahora (?:eres|seras|actuaras|vas a (?:ser|actuar))\b|\bmodo (?:desarrollador|sin restricciones|sin filtros|dios)\b",
    ),
    rule(
        "injection.i18n.fr",
        STRONG,
        r"\b(?:ignore[rsz]?|oublie[rsz]?|ne tiens pas compte|ne tenez pas compte|fais abstraction|faites abstraction|ne suis plus|ne suivez plus) (?:de |des |toutes |tous |les |tes |vos |ces |d'|du )*(?:instructions|consignes|directives|regles|ordres|messages?|(?:ce qui|tout ce qui) (?:precede|a ete dit|est au-dessus))|\b(?:instructions|consignes|directives) (?:precedentes|anterieures|initiales|ci-dessus)\b[^.\n]{0,40}\b(?:ignore|oublie|annulee|remplacee)|\b(?:revele|montre|affiche|repete|donne)[sz]?(?:-moi)? (?:ton |votre |le |tes |vos )*(?:prompt|message|instructions|consignes) (?:systeme|initial(?:es)?|d'origine|cache(?:es)?)\b|\ba partir de maintenant,? (?:tu es|vous etes|tu vas|tu joues)\b|\bmode (?:developpeur|sans restriction|sans filtre|dieu)\b",
    ),
    rule(
        "injection.i18n.de",
        STRONG,
        r"\b(?:ignoriere|ignorieren sie|ignoriert|vergiss|vergessen sie|missachte|missachten sie|verwirf|befolge nicht|ubergehe) (?:alle |die |deine |ihre |jegliche |samtliche |bisherigen |vorherigen |vorigen |obigen |fruheren |alten |ursprunglichen |was )*(?:anweisungen|instruktionen|befehle|regeln|vorgaben|richtlinien|anordnungen|nachrichten|eingaben|zuvor|oben|davor|bisher gesagt|gesagt wurde)|\b(?:zeige|zeig|gib|verrate|nenne|wiederhole|drucke)(?: mir)? (?:deinen |ihren |den |die |deine |ihre )*(?:system ?prompt|systemanweisungen?|systemnachricht|anfangsanweisungen?|ursprunglichen anweisungen|versteckten anweisungen)\b|\b(?:ab jetzt|ab sofort|von nun an) (?:bist du|verhaltst du dich|spielst du|antwortest du)\b|\b(?:entwicklermodus|entwickler-modus|modus ohne (?:einschrankungen|filter))\b",
    ),
    rule(
        "injection.i18n.pt",
        STRONG,
        r"\b(?:ignore|ignora|ignorar|ignorem|esqueca|esquece|esquecer|desconsidere|desconsidera|descarte|nao siga|pare de seguir) (?:todas |todos |tudo |as |os |suas |tuas |o que |de |quaisquer )*(?:instrucoes|ordens|regras|diretrizes|comandos|mensagens?|anteriores|previas|foi dito|acima)|\b(?:revele|mostre|mostra|diga|imprima|repita)(?:-me)? (?:o |a |seu |teu |as |suas )*(?:prompt|mensagem|instrucoes) (?:do |de )?(?:sistema|iniciais?|originais?|ocultas?)\b|\ba partir de agora,? (?:voce e|tu es|voce sera|voce vai)\b|\bmodo (?:desenvolvedor|sem restricoes|sem filtros)\b",
    ),
    rule(
        "injection.i18n.it",
        STRONG,
        r"\b(?:ignora|ignorate|ignori|dimentica|dimenticate|dimentichi|trascura|non seguire piu|non rispettare) (?:tutte |tutti |tutto |le |i |gli |tue |tuoi |sue |quello che |cio che |di |qualsiasi )*(?:istruzioni|ordini|regole|direttive|indicazioni|comandi|messaggi|precedenti|ti e stato detto|e stato detto)|\b(?:rivela|mostra|mostrami|dimmi|stampa|ripeti) (?:il |la |le |tuo |tua |tue |i )*(?:prompt|messaggio|istruzioni) (?:di |del )?(?:sistema|iniziali?|originali?|nascoste?)\b|\bda (?:ora|adesso) in poi,? (?:sei|sarai|agirai|rispondi)\b|\bmodalita (?:sviluppatore|senza restrizioni|senza filtri)\b",
    ),
    rule(
        "injection.i18n.nl",
        STRONG,
        r"\b(?:negeer|vergeet|verwerp|volg niet langer) (?:alle |de |je |jouw |uw |eerdere |vorige |voorgaande |bovenstaande )*(?:instructies|opdrachten|regels|richtlijnen|berichten|aanwijzingen)|\b(?:toon|laat zien|geef|herhaal) (?:je |jouw |de |uw )*(?:systeemprompt|systeeminstructies|oorspronkelijke instructies)\b|\bvanaf nu ben je\b",
    ),
    rule(
        "injection.i18n.pl",
        STRONG,
        r"\b(?:zignoruj|ignoruj|zapomnij|pomin|nie stosuj sie do) (?:wszystkie |wszystkich |poprzednie |poprzednich |wczesniejsze |wczesniejszych |twoje |swoje |o )*(?:instrukcje|instrukcji|polecenia|polecen|zasady|zasad|wytyczne|wytycznych)|\b(?:pokaz|ujawnij|wypisz|powtorz) (?:swoj |twoj |swoje |twoje )?(?:prompt systemowy|instrukcje systemowe)\b|\bod teraz jestes\b",
    ),
    rule(
        "injection.i18n.ru",
        STRONG,
        r"(?:игнорируй|игнорируйте|проигнорируй|забудь|забудьте|не обращай внимания на|не следуй|отмени) (?:все |всё |всех |свои |твои |ваши |любые |эти )*(?:предыдущие|прошлые|прежние|предшествующие|вышеуказанные|изначальные|системные|все)? ?(?:инструкции|указания|команды|правила|директивы|сообщения|ограничения|что было сказано)|(?:покажи|выведи|раскрой|повтори|напиши) (?:мне )?(?:свой |твой |ваш |весь )*(?:системный промпт|системные инструкции|исходные инструкции|начальные инструкции)|(?:теперь|отныне|с этого момента) ты (?:—|-)? ?(?:dan|не ограничен|свободен|без ограничений)|режим разработчика",
    ),
    rule(
        "injection.i18n.tr",
        STRONG,
        r"\b(?:onceki|yukaridaki|tum|butun|ilk) (?:tum |butun )?(?:talimatlari|talimatlarini|komutlari|kurallari|yonergeleri)(?:n)? (?:yok say|gormezden gel|unut|dikkate alma|atla)|\b(?:sistem (?:istemini|komutunu|talimatlarini)) (?:goster|yaz|tekrarla|acikla)",
    ),
    rule(
        "injection.i18n.zh",
        STRONG,
        r"(?:忽略|无视|忽视|忘记|忘掉|不要理会|不要遵守|跳过|忽略掉)(?:你|您)?(?:之前|以前|先前|上面|上述|前面|以上|所有|全部|原来|原有)(?:的)?(?:所有|全部|一切)?(?:的)?(?:指令|指示|说明|提示|命令|规则|设定|要求|内容|对话)|(?:显示|输出|告诉我|打印|重复|泄露|透露)(?:你的|您的)?(?:系统提示|系统指令|初始指令|原始指令|提示词|系统消息)|(?:开发者模式|越狱模式|无限制模式)",
    ),
    rule(
        "injection.i18n.ja",
        STRONG,
        r"(?:以前|前|上記|これまで|最初|すべて|全て)の(?:すべての|全ての)?(?:指示|命令|指令|ルール|プロンプト|設定)を(?:すべて|全て)?(?:無視|忘れ)|(?:システムプロンプト|初期指示|元の指示)を(?:表示|教え|出力|見せ|繰り返)|開発者モード",
    ),
    rule(
        "injection.i18n.ko",
        STRONG,
        r"(?:이전|위의|앞의|모든|기존) ?(?:모든 )?(?:지시|지시사항|명령|지침|규칙|프롬프트|설정)(?:을|를|은|는)? ?(?:무시|잊어)|(?:시스템 프롬프트|초기 지시|원래 지시)(?:을|를)? ?(?:보여|출력|알려|공개)|개발자 모드",
    ),
    rule(
        "injection.i18n.ar",
        STRONG,
        r"(?:تجاهل|انس|إنس|لا تتبع) (?:جميع |كل )?(?:التعليمات|الأوامر|الاوامر|القواعد|التوجيهات) ?(?:السابقة|الأصلية|السابقه)?",
    ),
    rule(
        "injection.i18n.hi",
        STRONG,
        r"(?:पिछले|पिछली|पहले के|सभी|ऊपर के) (?:सभी )?(?:निर्देशों|निर्देश|आदेशों|नियमों) (?:को )?(?:अनदेखा|नजरअंदाज|भूल)",
    ),
];

/// The rule ids, for the catalogue.
pub(crate) fn rule_ids() -> impl Iterator<Item = &'static str> {
    RULES.iter().map(|rule| rule.id)
}

/// The id of a rule as a [`RuleId`].
pub(crate) fn rule_id(rule: &Rule) -> RuleId {
    RuleId::new(rule.id)
}
